import type { AccountConfig } from '../config/app-config';
import type { AccountHealth } from './account-health';
import type { SlotLedger } from './slot-ledger';

/** One configured account as the pool holds it. */
export interface PoolAccount {
  readonly id: string;
  /** `max_concurrency`: its slots. */
  readonly max: number;
  readonly config: AccountConfig;
  readonly health: AccountHealth;
}

/** Some usable account serves the model but all its slots are busy: wait for a release. */
export const WAIT_FOR_SLOT = -1;
/** No account is usable now, but one will be when a cooldown or ejection ends. */
export const WAIT_FOR_COOLDOWN = -2;
/** Nothing left to wait for: every candidate is excluded or unhealthy (auth). */
export const NO_CANDIDATE = -3;

/**
 * Picks the account for one request among `accounts` (those serving its model, in config order)
 * and returns its index, or one of the negative outcomes above.
 *
 * - Usable accounts with a free slot compete on busy/max (so load spreads in proportion to
 *   capacity); ties go round robin, scanning from `cursor`.
 * - When no candidate is usable and the only reason is ejection (none is cooling down after a
 *   429), the one that failed least recently is tried anyway (DESIGN §6.11): an ejection is the
 *   gateway's guess, a 429 is the upstream's explicit request to wait.
 *
 * Pure: reads health and ledger counts, changes nothing, allocates nothing.
 */
export function selectAccount(
  accounts: readonly PoolAccount[],
  ledger: SlotLedger,
  now: number,
  exclude: ReadonlySet<string> | undefined,
  cursor: number,
): number {
  const n = accounts.length;
  const checkExcluded = exclude !== undefined && exclude.size > 0;
  let best = -1;
  let bestBusy = 0;
  let bestMax = 1;
  let anyUsable = false;
  let anyCooling = false;
  let fallback = -1;
  for (let k = 0; k < n; k++) {
    const i = (cursor + k) % n;
    const account = accounts[i];
    if (checkExcluded && exclude.has(account.id)) continue;
    const state = account.health.state(now);
    if (state === 'healthy') {
      anyUsable = true;
      const busy = ledger.busy(account.id);
      // busy/max < bestBusy/bestMax, in integers.
      if (busy < account.max && (best < 0 || busy * bestMax < bestBusy * account.max)) {
        best = i;
        bestBusy = busy;
        bestMax = account.max;
      }
    } else if (state === 'cooling') {
      anyCooling = true;
    } else if (state === 'ejected') {
      if (fallback < 0 || account.health.lastFailureAt < accounts[fallback].health.lastFailureAt) fallback = i;
    }
  }
  if (best >= 0) return best;
  if (anyUsable) return WAIT_FOR_SLOT;
  if (fallback >= 0 && !anyCooling) {
    const account = accounts[fallback];
    return ledger.busy(account.id) < account.max ? fallback : WAIT_FOR_SLOT;
  }
  return anyCooling || fallback >= 0 ? WAIT_FOR_COOLDOWN : NO_CANDIDATE;
}
