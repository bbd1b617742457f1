/**
 * RFC 5952 text form of an IPv6 address (lower case, leading zeros dropped, the longest run of two or
 * more zero groups — the first one on a tie — written as "::"). Shared by the agent (addresses read
 * from netlink) and the control plane (canonical addresses), which must agree on it byte for byte.
 * Pure; needs at least 16 bytes (callers check and raise their own error type).
 */
export function formatIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestLen < 2) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}
