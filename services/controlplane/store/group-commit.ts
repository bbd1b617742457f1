/**
 * Group commit's queue: concurrent writes of one kind wait here and go to Postgres together, so that
 * N API calls cost one BEGIN, a few statements and one COMMIT (one WAL flush) instead of N of each —
 * the technique databases use for their own log (Postgres's commit_delay, InnoDB's group commit),
 * applied one level up. Each write still gets its own revision, audit row, outbox row and error
 * (db.ts withWriteGroup, real-servers.ts createGroup).
 *
 * No timer and no fixed window: a write that finds its site's lane free goes on the next turn of the
 * event loop (setImmediate, so that the other requests read from the sockets in the same turn join
 * it); while a group is in flight, new writes queue and leave together when it finishes. An idle API
 * therefore adds no latency, and under load the groups grow by themselves (up to `max`).
 *
 * A group runs in the async context of the write whose arrival scheduled it: its SQL's trace spans
 * land in that call's trace, and anything that reads AsyncLocalStorage in a hook would see that
 * call's store — a write that must not share its context stays out (Database.isolated, plan.ts).
 */

/** One write's outcome: its result, or the error to throw to its caller. */
export type Outcome<O> = { ok: O } | { err: unknown };

interface Waiter<I, O> {
  item: I;
  resolve: (o: O) => void;
  reject: (e: unknown) => void;
}

export interface GroupQueueOptions {
  /** Most writes in one group (one transaction); read at every flush, so it may be a getter. */
  max: number;
}

/** One site's writes: the group in flight (at most one) and the writes waiting for it. */
interface Lane<I, O> {
  queue: Waiter<I, O>[];
  busy: boolean;
  scheduled: boolean;
}

/**
 * Writes are grouped per key (the site): a group never mixes sites, so a site whose writes wait —
 * an operator's apply holds its lock, a service row is locked for an update — holds up no other site.
 * One group per site in flight at a time: while it waits for its COMMIT's WAL flush the next one
 * gathers, and the longer it gathers the less each write costs Postgres (bench:api, 16 clients:
 * 1 376 writes/s in groups of 8.2 with one in flight; 1 169/s in groups of 5.0 with two, 1 174/s in
 * groups of 3.5 with three).
 */
export class GroupQueue<I, O> {
  private readonly lanes = new Map<string, Lane<I, O>>();
  /** Groups run and writes in them, for tests and the shutdown log. */
  readonly stats = { groups: 0, writes: 0, largest: 0 };

  /**
   * @param run writes one group; returns one outcome per item, in order. It must not throw (a throw
   *   fails every write of the group with that error).
   */
  constructor(
    private readonly run: (items: readonly I[]) => Promise<Outcome<O>[]>,
    private readonly opts: GroupQueueOptions,
  ) {}

  submit(key: string, item: I): Promise<O> {
    let lane = this.lanes.get(key);
    if (!lane) this.lanes.set(key, (lane = { queue: [], busy: false, scheduled: false }));
    const l = lane;
    return new Promise<O>((resolve, reject) => {
      l.queue.push({ item, resolve, reject });
      this.schedule(key, l);
    });
  }

  private schedule(key: string, lane: Lane<I, O>): void {
    if (lane.busy || lane.scheduled) return;
    if (lane.queue.length === 0) {
      this.lanes.delete(key);
      return;
    }
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      const group = lane.queue.splice(0, Math.max(1, this.opts.max));
      lane.busy = true;
      this.stats.groups++;
      this.stats.writes += group.length;
      if (group.length > this.stats.largest) this.stats.largest = group.length;
      void this.runGroup(key, lane, group);
    });
  }

  private async runGroup(key: string, lane: Lane<I, O>, group: Waiter<I, O>[]): Promise<void> {
    try {
      const outcomes = await this.run(group.map((w) => w.item));
      group.forEach((w, i) => {
        const o = outcomes[i];
        if (o === undefined) w.reject(new Error("group commit returned no outcome for a write"));
        else if ("ok" in o) w.resolve(o.ok);
        else w.reject(o.err);
      });
    } catch (err) {
      for (const w of group) w.reject(err);
    } finally {
      lane.busy = false;
      this.schedule(key, lane);
    }
  }
}
