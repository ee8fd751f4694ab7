import type { Secret } from '../config/secret';
import type { UpstreamError } from '../providers/upstream-error';

/**
 * - `cooling`: the upstream answered 429; usable again when its Retry-After (or the default) ends.
 * - `ejected`: consecutive connect/timeout/5xx failures; usable again when the backoff ends, and
 *   the next failure after that ejects it again for twice as long (half-open probing).
 * - `unhealthy`: the upstream refused the credential (401/403); rechecked after `authRecheckMs`.
 */
export type HealthState = 'healthy' | 'cooling' | 'ejected' | 'unhealthy';

export interface HealthPolicy {
  /** Cooldown after a 429 that names no Retry-After (`pool.cooldown_ms`). */
  cooldownMs: number;
  /** Consecutive connect/timeout/server failures that eject an account. */
  ejectAfterFailures: number;
  /** First ejection; each further one doubles it, up to `ejectMaxMs`. */
  ejectBaseMs: number;
  ejectMaxMs: number;
  /** How long an account that failed authentication stays out before it is tried again. */
  authRecheckMs: number;
}

export const DEFAULT_HEALTH_POLICY: Omit<HealthPolicy, 'cooldownMs'> = {
  ejectAfterFailures: 3,
  ejectBaseMs: 1_000,
  ejectMaxMs: 60_000,
  authRecheckMs: 5 * 60_000,
};

const LAST_ERROR_MAX = 200;

/**
 * When each restriction of an account ends, in this process's clock (0 = none). What replicas
 * share through Redis, so a 429 seen by one keeps the others off the account too.
 */
export interface HealthMarks {
  cooldownUntil: number;
  ejectedUntil: number;
  unhealthyUntil: number;
}

/**
 * One account's health and counters. Every state ends at a stored instant and is computed from
 * the clock when asked, so nothing needs a timer to become healthy again.
 */
export class AccountHealth {
  requests = 0;
  errors = 0;
  lastError: string | null = null;
  creditsUsed = 0;
  /** When the account last failed (0 = never); the fallback picks the smallest among ejected accounts. */
  lastFailureAt = 0;
  private consecutiveFailures = 0;
  private ejections = 0;
  private cooldownUntil = 0;
  private ejectedUntil = 0;
  private unhealthyUntil = 0;

  constructor(
    private readonly policy: HealthPolicy,
    private readonly apiKey?: Secret,
  ) {}

  state(now: number): HealthState {
    if (this.unhealthyUntil > now) return 'unhealthy';
    if (this.cooldownUntil > now) return 'cooling';
    if (this.ejectedUntil > now) return 'ejected';
    return 'healthy';
  }

  /** When every current restriction has ended (0 when usable now). */
  usableAt(now: number): number {
    const until = Math.max(this.unhealthyUntil, this.cooldownUntil, this.ejectedUntil);
    return until > now ? until : 0;
  }

  /** The next instant the state changes by itself, Infinity when none is pending. */
  nextChangeAt(now: number): number {
    let next = Infinity;
    if (this.unhealthyUntil > now) next = this.unhealthyUntil;
    if (this.cooldownUntil > now && this.cooldownUntil < next) next = this.cooldownUntil;
    if (this.ejectedUntil > now && this.ejectedUntil < next) next = this.ejectedUntil;
    return next;
  }

  marks(): HealthMarks {
    return { cooldownUntil: this.cooldownUntil, ejectedUntil: this.ejectedUntil, unhealthyUntil: this.unhealthyUntil };
  }

  /**
   * Applies restrictions another replica saw. Only ever extends one (a late or repeated message
   * cannot cut a cooldown short); true when some restriction got longer.
   */
  applyMarks(marks: HealthMarks, now: number): boolean {
    let changed = false;
    if (marks.cooldownUntil > now && marks.cooldownUntil > this.cooldownUntil) {
      this.cooldownUntil = marks.cooldownUntil;
      changed = true;
    }
    if (marks.ejectedUntil > now && marks.ejectedUntil > this.ejectedUntil) {
      this.ejectedUntil = marks.ejectedUntil;
      changed = true;
    }
    if (marks.unhealthyUntil > now && marks.unhealthyUntil > this.unhealthyUntil) {
      this.unhealthyUntil = marks.unhealthyUntil;
      changed = true;
    }
    if (changed && now > this.lastFailureAt) this.lastFailureAt = now;
    return changed;
  }

  /** True when this ended an ejection (the account became usable). */
  recordSuccess(now: number): boolean {
    this.consecutiveFailures = 0;
    this.ejections = 0;
    const wasEjected = this.ejectedUntil > now;
    this.ejectedUntil = 0;
    return wasEjected;
  }

  /** True when this took the account out of service (cooldown, ejection or unhealthy). */
  recordFailure(error: UpstreamError, now: number): boolean {
    // The client's own mistake says nothing about the account.
    if (error.failure === 'client') return false;
    this.errors++;
    this.lastError = describeFailure(error, this.apiKey);
    this.lastFailureAt = now;
    switch (error.failure) {
      case 'rate_limited': {
        const ms = error.retryAfterMs !== undefined && error.retryAfterMs > 0 ? error.retryAfterMs : this.policy.cooldownMs;
        if (now + ms <= this.cooldownUntil) return false;
        this.cooldownUntil = now + ms;
        return true;
      }
      case 'auth':
        this.unhealthyUntil = now + this.policy.authRecheckMs;
        return true;
      case 'connect':
      case 'timeout':
      case 'server':
        this.consecutiveFailures++;
        // Requests already in flight when the account was ejected must not stretch its backoff.
        if (this.ejectedUntil > now || this.consecutiveFailures < this.policy.ejectAfterFailures) return false;
        this.ejectedUntil = now + Math.min(this.policy.ejectBaseMs * 2 ** this.ejections, this.policy.ejectMaxMs);
        if (this.policy.ejectBaseMs * 2 ** this.ejections < this.policy.ejectMaxMs) this.ejections++;
        return true;
      default:
        // `stream`: the account answered and then the stream broke; counted, but never ejects.
        return false;
    }
  }
}

/** Failure kind, status and a short, redacted message: never a credential, never a whole upstream body. */
export function describeFailure(error: UpstreamError, apiKey?: Secret): string {
  const status = error.status === undefined ? '' : ` (HTTP ${error.status})`;
  let message = error.message;
  const key = apiKey?.reveal();
  if (key) message = message.split(key).join('[redacted]');
  message = message
    .replace(/Bearer\s+\S+/gi, 'Bearer [redacted]')
    .replace(/\b(?:sk|pk|rk|db|key|sess|api)[-_][\w*.-]{4,}/gi, '[redacted]')
    .replace(/[\w-]{32,}/g, '[redacted]')
    .replace(/\s+/g, ' ')
    .trim();
  if (message.length > LAST_ERROR_MAX) message = `${message.slice(0, LAST_ERROR_MAX)}…`;
  return message ? `${error.failure}${status}: ${message}` : `${error.failure}${status}`;
}
