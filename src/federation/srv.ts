/**
 * SRV records for federation: the look-up (through an injectable resolver, since DNS cannot go
 * through an HTTP proxy) and the RFC 2782 order in which targets are tried.
 * @module
 */

/** One SRV record, as `dns.promises.resolveSrv` answers it. */
export interface SrvRecord {
  /** Target host name; `.` (or empty) means "no service". */
  readonly name: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
}

/**
 * Resolves the SRV records of a name, with the shape of `dns.promises.resolveSrv`. A rejection
 * with `ENOTFOUND` or `ENODATA` means "no record"; any other rejection is a temporary failure.
 */
export type ResolveSrv = (hostname: string) => Promise<readonly SrvRecord[]>;

/** What one SRV look-up found. */
export type SrvAnswer =
  /** Usable records (RFC 2782 "." targets removed), in answer order. */
  | { readonly kind: 'found'; readonly records: readonly SrvRecord[] }
  /** No record (NXDOMAIN, NODATA, or an empty answer). */
  | { readonly kind: 'none' }
  /** The only record has the target "." : the service is decidedly not available (RFC 2782). */
  | { readonly kind: 'no-service' }
  /** The look-up failed for another reason (time-out, SERVFAIL…): counts as no record. */
  | { readonly kind: 'failed'; readonly code: string };

const NO_RECORD_CODES: ReadonlySet<string> = new Set(['ENOTFOUND', 'ENODATA', 'NOTFOUND', 'NODATA']);
const TARGET = /^[a-z0-9-]+(?:\.[a-z0-9-]+)*$/;

function isRootTarget(name: unknown): boolean {
  return name === '.' || name === '';
}

/** Run one look-up and classify the answer; records that are not well-formed are dropped. */
export async function lookupSrv(resolveSrv: ResolveSrv, name: string): Promise<SrvAnswer> {
  let answer: readonly SrvRecord[];
  try {
    answer = await resolveSrv(name);
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && NO_RECORD_CODES.has(code)) return { kind: 'none' };
    return { kind: 'failed', code: typeof code === 'string' ? code : 'ERROR' };
  }
  if (!Array.isArray(answer)) return { kind: 'failed', code: 'EBADRESP' };
  if (answer.length === 1 && isRootTarget((answer[0] as { name?: unknown }).name)) return { kind: 'no-service' };
  const records: SrvRecord[] = [];
  for (const record of answer as readonly unknown[]) {
    const candidate = normaliseRecord(record);
    if (candidate !== undefined) records.push(candidate);
  }
  return records.length === 0 ? { kind: 'none' } : { kind: 'found', records };
}

function normaliseRecord(record: unknown): SrvRecord | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const { name, port, priority, weight } = record as Record<string, unknown>;
  if (typeof name !== 'string' || isRootTarget(name)) return undefined;
  const host = name.toLowerCase().replace(/\.$/, '');
  if (host.length > 253 || !TARGET.test(host)) return undefined;
  const uint16 = (value: unknown, min: number): value is number => Number.isInteger(value) && (value as number) >= min && (value as number) <= 65535;
  if (!uint16(port, 1) || !uint16(priority, 0) || !uint16(weight, 0)) return undefined;
  return { name: host, port, priority, weight };
}

/**
 * Order records as RFC 2782 says targets are tried: lowest priority first; within a priority,
 * a weighted random pick, repeated. Zero-weight records come after the weighted ones of their
 * priority, shuffled (RFC 2782 gives them "a very small chance"; the off-by-one of the RFC's
 * running-sum rule, which let a zero-weight record win on a draw of 0, is avoided as Synapse does).
 * @param random Uniform in [0, 1). **Default:** `Math.random`.
 */
export function orderSrvRecords(records: readonly SrvRecord[], random: () => number = Math.random): SrvRecord[] {
  const byPriority = new Map<number, SrvRecord[]>();
  for (const record of records) {
    const group = byPriority.get(record.priority);
    if (group === undefined) byPriority.set(record.priority, [record]);
    else group.push(record);
  }
  const ordered: SrvRecord[] = [];
  for (const priority of [...byPriority.keys()].sort((a, b) => a - b)) {
    const group = byPriority.get(priority) ?? [];
    const weighted = group.filter((record) => record.weight > 0);
    let total = weighted.reduce((sum, record) => sum + record.weight, 0);
    while (weighted.length > 0) {
      let draw = Math.min(total, Math.floor(random() * total) + 1);
      let index = 0;
      for (; index < weighted.length - 1; index++) {
        draw -= (weighted[index] as SrvRecord).weight;
        if (draw <= 0) break;
      }
      const [chosen] = weighted.splice(index, 1) as [SrvRecord];
      ordered.push(chosen);
      total -= chosen.weight;
    }
    const unweighted = group.filter((record) => record.weight === 0);
    for (let i = unweighted.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [unweighted[i], unweighted[j]] = [unweighted[j] as SrvRecord, unweighted[i] as SrvRecord];
    }
    ordered.push(...unweighted);
  }
  return ordered;
}
