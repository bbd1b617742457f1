/**
 * Usage texts and the usage error (exit code 2, as getopt-style tools do). Kept apart from the
 * parser so `--help` and a wrong flag print the same words.
 */

/** A command line the CLI cannot make sense of: printed with the usage text, exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(
    message: string,
    /** The usage text of the command that was being parsed; filled in by the parser. */
    public usage = "",
  ) {
    super(message);
  }
}

export const GLOBAL_FLAGS = `Global flags:
  --addr HOST:PORT   control plane gRPC address (env LVSFLEET_ADDR, default 127.0.0.1:50051)
  --json             print the API response as protobuf JSON
  --reason TEXT      reason recorded in the audit log (sent as metadata x-lvsfleet-reason)
  -h, --help         show help`;

export const MAIN_USAGE = `lvsfleet: manage LVS/IPVS load-balancer fleets through the lvsfleet control plane

Usage: lvsfleet [global flags] <command> [args] [flags]

Commands:
  site  create|get|list|update|delete   sites (datacenters), with IPVS timeouts
  host  create|get|list|update|delete   hosts: Directors and real servers
  vs    create|get|list|update|delete   virtual services (VIP:port or fwmark, scheduler, persistence)
  rs    create|get|list|update|delete   real servers of a virtual service (DR/NAT/TUN, weight)
  mark  create|get|list|update|delete   firewall marks (traffic grouped into one fwmark service)
  list  <site>                          a site's services and real servers, like ipvsadm -Ln
  audit [--site S] [--resource NAME]    the audit log, newest first
  import ipvsadm|keepalived …           create services from an ipvsadm-save dump or a keepalived.conf
  export ipvsadm --site S --director H  a Director's rules as \`ipvsadm -S -n\` prints them
  hosts [--site S] [--state STATE]      hosts' distribution status: applied revision, last seen, errors
  rollout wait [--revision N] [--site S] [--timeout 60s]   wait until the hosts have applied a revision
  stats <site> [--vs VS]                the Directors' IPVS counters, like ipvsadm -Ln --stats
  health <site> [--vs VS]               real server health per Director (weight set, since, last result)
  drain <site>/<vs>/<rs> [--wait]       weight 0 on its Directors; --wait: until ActiveConn is 0, then delete
  undrain <site>/<vs>/<rs>              the configured weight again
  plan <write|import …> [--apply]      what a write or import would change on each host; --apply it if nothing moved

Ids: short ids expand to resource names: ams1 → sites/ams1, ams1/lb1 → sites/ams1/hosts/lb1,
ams1/web → sites/ams1/virtualServices/web, ams1/web/rs1 → …/virtualServices/web/realServers/rs1,
ams1/https → sites/ams1/firewallMarks/https. Full names are accepted too.

Run \`lvsfleet <command> --help\` for a command's flags.

${GLOBAL_FLAGS}`;

const WRITE_FLAGS = `  --validate-only    validate the request on the server; write nothing`;
const DELETE_FLAGS = `  --force            also delete children / references (otherwise FAILED_PRECONDITION when in use)
  --etag ETAG        fail with ABORTED unless the resource still has this etag (quotes optional)`;

export const SITE_USAGE = `Usage:
  lvsfleet site create <site> [flags]
  lvsfleet site get <site>
  lvsfleet site list
  lvsfleet site update <site> [flags]      (update_mask = the flags given)
  lvsfleet site delete <site> [--force] [--etag ETAG]

Flags (create, update):
  --display-name TEXT
  --tcp-timeout SECONDS     IPVS tcp timeout (ipvsadm --set tcp tcpfin udp)
  --tcpfin-timeout SECONDS  IPVS tcpfin timeout
  --udp-timeout SECONDS     IPVS udp timeout
  --label KEY=VALUE         repeatable; on update replaces all labels
  --etag ETAG               (update) optimistic concurrency
${WRITE_FLAGS}
Delete:
${DELETE_FLAGS}

${GLOBAL_FLAGS}`;

export const HOST_USAGE = `Usage:
  lvsfleet host create <site>/<host> [flags]
  lvsfleet host get <site>/<host>
  lvsfleet host list [<site>]              (all sites when omitted)
  lvsfleet host update <site>/<host> [flags]
  lvsfleet host delete <site>/<host> [--force] [--etag ETAG]

Flags (create, update):
  --role director|real-server       repeatable or comma-separated
  --address ADDR                    primary address, repeatable (IPv4 and/or IPv6)
  --interface NAME=CIDR[,CIDR]      e.g. eth0=192.0.2.2/24; repeatable
  --label KEY=VALUE                 repeatable
  --etag ETAG                       (update) optimistic concurrency
${WRITE_FLAGS}
Delete:
${DELETE_FLAGS}

${GLOBAL_FLAGS}`;

export const VS_USAGE = `Usage:
  lvsfleet vs create <site>/<vs> (--tcp|--udp|--sctp VIP:PORT | --fwmark MARK [--ipv6]) [flags]
  lvsfleet vs get <site>/<vs>
  lvsfleet vs list [<site>]                (all sites when omitted)
  lvsfleet vs update <site>/<vs> [flags]   (update_mask = the flags given)
  lvsfleet vs delete <site>/<vs> [--force] [--etag ETAG]

Service (like ipvsadm -A):
  -t, --tcp VIP:PORT          TCP service; IPv6 as [2001:db8::1]:80; no port = port 0 (all ports)
  -u, --udp VIP:PORT          UDP service
      --sctp VIP:PORT         SCTP service
  -f, --fwmark MARK           firewall-mark service (define the mark with \`lvsfleet mark create\`)
  -6, --ipv6                  the fwmark service is IPv6
  -s, --scheduler NAME        rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos (default wlc)
  -b, --sched-flags F[,F]     sh-fallback sh-port mh-fallback mh-port
  -p, --persistent SECONDS    persistence timeout (0 = off)
  -M, --netmask N|MASK        persistence granularity: prefix length or dotted IPv4 mask
  -o, --one-packet            one-packet scheduling (UDP)
      --no-one-packet         (update) turn it off
      --pe NAME               persistence engine, e.g. sip
      --director HOST         Director carrying the service (lb1, ams1/lb1 or a name); repeatable
      --on-failure quiesce|remove   what a failed health check does (default quiesce)
      --sorry ADDR:PORT       sorry server when every real server is down
      --sorry-forward dr|nat|tun
Health check (on update these replace the whole check; --no-check removes it):
      --check tcp|http|https|dns|exec
      --check-path PATH       http(s): request path
      --check-status CODE     http(s): expected status (default any 2xx)
      --check-host HOST       http(s): Host header
      --check-body REGEX      http(s): body must match
      --check-insecure        https: do not verify the certificate
      --check-query NAME      dns: query name     --check-query-type TYPE  dns: A, AAAA, SOA…
      --check-command CMD     exec: command (split on spaces), exit 0 = healthy
      --check-port PORT       port to check (default the real server's)
      --interval 5s --timeout 3s --rise 2 --fall 3
      --etag ETAG             (update) optimistic concurrency
${WRITE_FLAGS}
Delete:
${DELETE_FLAGS}

${GLOBAL_FLAGS}`;

export const RS_USAGE = `Usage:
  lvsfleet rs create <site>/<vs>/<rs> --address ADDR [flags]
  lvsfleet rs get <site>/<vs>/<rs>
  lvsfleet rs list <site>/<vs>
  lvsfleet rs update <site>/<vs>/<rs> [flags]   (update_mask = the flags given)
  lvsfleet rs delete <site>/<vs>/<rs> [--etag ETAG]

Real server (like ipvsadm -a):
  -r, --address ADDR          real server address (ADDR:PORT sets the port too)
      --port PORT             0 = the service port; only NAT may differ from the service port
  -g, --dr                    direct routing, "gatewaying" (default)
  -m, --nat                   NAT, "masquerading"
  -i, --tun                   IP-in-IP tunnelling
      --tun-type ipip|gue|gre   --tun-port PORT (gue)
      --tun-nocsum | --tun-csum | --tun-remcsum
  -w, --weight N              0..65535 (default 1; 0 = quiesced)
  -x, --u-threshold N         upper connection threshold (0 = none)
  -y, --l-threshold N         lower connection threshold (0 = none)
      --host HOST             the Host this real server is (rs1, ams1/web1 or a name)
      --etag ETAG             (update) optimistic concurrency
${WRITE_FLAGS}

${GLOBAL_FLAGS}`;

export const MARK_USAGE = `Usage:
  lvsfleet mark create <site>/<mark> --mark N --match SPEC [--match SPEC…]
  lvsfleet mark get <site>/<mark>
  lvsfleet mark list [<site>]              (all sites when omitted)
  lvsfleet mark update <site>/<mark> [--mark N] [--match SPEC…]   (--match replaces all matches)
  lvsfleet mark delete <site>/<mark> [--force] [--etag ETAG]

  --mark N                  the fwmark value (1..4294967295), unique in the site
  --match [PROTO:]DESTS[:PORTS]
                            PROTO tcp|udp|sctp; DESTS comma-separated addresses or CIDRs (IPv6 in
                            brackets); PORTS comma-separated ports or ranges. Examples:
                              --match tcp:192.0.2.10:80,443
                              --match tcp:192.0.2.10:10000-20000
                              --match udp:[2001:db8::1]:53
      --etag ETAG           (update) optimistic concurrency
${WRITE_FLAGS}
Delete:
${DELETE_FLAGS}

${GLOBAL_FLAGS}`;

export const LIST_USAGE = `Usage: lvsfleet list <site>

Prints the site's virtual services and their real servers the way \`ipvsadm -Ln\` does:
  Prot LocalAddress:Port Scheduler Flags
    -> RemoteAddress:Port           Forward Weight
  TCP  192.0.2.10:80 wlc persistent 300
    -> 198.51.100.11:80             Route   1
This is the desired state held by the control plane; the ActiveConn/InActConn counters of
ipvsadm live on the Directors and are not part of this listing.

${GLOBAL_FLAGS}`;

export const AUDIT_USAGE = `Usage: lvsfleet audit [--site SITE] [--resource NAME] [--limit N] [--page-token TOKEN]

Lists the audit log, newest first.
  --site SITE         only this site's entries
  --resource NAME     only this resource (a full name; ending in "/" = everything under it)
  --limit N           at most N entries (default 50)
  --page-token TOKEN  continue after the last page (the token is printed when there are more)

${GLOBAL_FLAGS}`;
