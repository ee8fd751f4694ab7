import { Inject, Injectable, Logger, OnModuleDestroy, Optional } from '@nestjs/common';
import { GatewayError, truncate } from '../common/gateway-error';
import { APP_CONFIG, AppConfig, AccountConfig } from '../config/app-config';
import type { UpstreamError } from '../providers/upstream-error';
import { AccountHealth, DEFAULT_HEALTH_POLICY, HealthMarks, HealthPolicy } from './account-health';
import { NO_CANDIDATE, PoolAccount, WAIT_FOR_COOLDOWN, WAIT_FOR_SLOT, selectAccount } from './account-selector';
import { SLOT_LEDGER, SlotLedger, SlotToken, isPromiseLike } from './slot-ledger';

/** One held slot. `release()` gives it back once; later calls do nothing. */
export interface Lease {
  readonly account: AccountConfig;
  release(): void;
}

export interface AcquireOptions {
  /** The request's abort signal: aborting while queued leaves the queue at once, holding no slot. */
  signal?: AbortSignal;
  /** Accounts already tried for this request; a retry goes to another one. */
  exclude?: ReadonlySet<string>;
}

/** The account object of `GET /admin/accounts` (DESIGN §3.4). */
export interface AccountView {
  id: string;
  provider: string;
  status: 'healthy' | 'cooling_down' | 'unhealthy';
  total_slots: number;
  busy_slots: number;
  available_slots: number;
  cooldown_until: string | null;
  requests: number;
  errors: number;
  last_error: string | null;
  credits_used: number;
}

/** The `pool` object of `GET /admin/accounts` and the slot numbers of `/health`. */
export interface PoolTotals {
  accounts: number;
  total_slots: number;
  /** Free slots on accounts usable now. */
  available_slots: number;
  queued: number;
}

/** For `/health`: `unhealthy` when no account is usable, `degraded` when some account is out. */
export interface PoolCondition {
  status: 'healthy' | 'degraded' | 'unhealthy';
  usable_accounts: number;
  /** Cooling down, ejected or unhealthy. */
  impaired_accounts: number;
}

export interface PoolOptions {
  /** Milliseconds since the epoch; the tests inject one. */
  now?: () => number;
  health?: Partial<Omit<HealthPolicy, 'cooldownMs'>>;
}

/** Told when a failure seen here took an account out of service, with all its restrictions. */
export type HealthListener = (accountId: string, marks: HealthMarks) => void;

/** Optional provider of PoolOptions. */
export const POOL_OPTIONS = Symbol('POOL_OPTIONS');

/**
 * Thrown by `acquire` when `exclude` leaves nothing to try now: every other account serving the
 * model is excluded, unhealthy, or cooling down (a retry does not wait for a cooldown). The caller
 * answers with the last upstream failure instead. Recognize it with `isNoOtherAccount`.
 */
export class NoOtherAccountError extends GatewayError {
  constructor() {
    super(503, 'service_unavailable', 'no_other_account', 'No other account can serve this request now.', null, 1);
    this.name = 'NoOtherAccountError';
  }
}

export function isNoOtherAccount(err: unknown): err is NoOtherAccountError {
  return err instanceof GatewayError && err.code === 'no_other_account';
}

interface Route {
  readonly accounts: PoolAccount[];
  /** Round-robin start of the next selection. */
  cursor: number;
}

/** A request waiting for a slot, linked into the pool's FIFO queue. */
class Waiter {
  prev: Waiter | null = null;
  next: Waiter | null = null;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  /** A shared ledger is answering a tryAcquire for it. */
  pending = false;
  settled = false;

  constructor(
    readonly route: Route,
    readonly model: string,
    readonly exclude: ReadonlySet<string> | undefined,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (lease: Lease) => void,
    readonly reject: (err: unknown) => void,
  ) {}
}

class PoolLease implements Lease {
  readonly account: AccountConfig;
  private released = false;

  constructor(
    private readonly entry: PoolAccount,
    private readonly token: SlotToken,
    private readonly giveBack: (entry: PoolAccount, token: SlotToken) => void,
  ) {
    this.account = entry.config;
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.giveBack(this.entry, this.token);
  }
}

/** A shared ledger may lose a race between reading counts and taking the slot; retry this often. */
const MAX_RACES = 3;
/** Wake timers never sleep longer than this (setTimeout overflows past ~24.8 days). */
const MAX_WAKE_DELAY_MS = 60_000;
/** Retry-After when no configured account serves the model: a config change needs a restart. */
const NO_ACCOUNT_RETRY_AFTER_S = 60;

/**
 * The pool of upstream accounts: hands out concurrency slots (least busy first, round robin on
 * ties), queues requests FIFO when every slot is busy, and keeps each account's health from the
 * outcomes reported to it.
 *
 * Invariant: after every release or state change, no queued request could take a free slot; so a
 * new request that finds a free slot may take it without overtaking anyone, and the fast path
 * stays a few map lookups with no timer and no allocation beyond the lease.
 */
@Injectable()
export class AccountPool implements OnModuleDestroy {
  private readonly logger = new Logger(AccountPool.name);
  private readonly accounts: PoolAccount[];
  private readonly byId = new Map<string, PoolAccount>();
  private readonly routes = new Map<string, Route>();
  /** Models no account lists explicitly: served by the accounts without a `models` list. */
  private readonly anyModel: Route;
  private readonly queueTimeoutMs: number;
  private readonly maxQueue: number;
  private readonly now: () => number;
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private size = 0;
  private wakeTimer: NodeJS.Timeout | undefined;
  private wakeAt = Infinity;
  /** Queued requests that could use each account; kept only for a ledger that wants to know. */
  private readonly waitingFor = new Map<string, number>();
  private healthListener: HealthListener | undefined;
  private readonly giveBack = (entry: PoolAccount, token: SlotToken): void => this.releaseSlot(entry, token);
  private readonly onWake = (): void => {
    this.wakeTimer = undefined;
    this.wakeAt = Infinity;
    this.dispatch(true);
  };

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    @Inject(SLOT_LEDGER) private readonly ledger: SlotLedger,
    @Optional() @Inject(POOL_OPTIONS) options: PoolOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.queueTimeoutMs = config.pool.queue_timeout_ms;
    this.maxQueue = config.pool.max_queue;
    const policy: HealthPolicy = { ...DEFAULT_HEALTH_POLICY, ...options.health, cooldownMs: config.pool.cooldown_ms };
    this.accounts = config.accounts.map((account) => ({
      id: account.id,
      max: account.max_concurrency,
      config: account,
      health: new AccountHealth(policy, account.api_key),
    }));
    for (const account of this.accounts) this.byId.set(account.id, account);
    const modelIds = new Set(config.models.map((m) => m.id));
    for (const account of config.accounts) for (const id of account.models ?? []) modelIds.add(id);
    for (const id of modelIds) {
      this.routes.set(id, { accounts: this.accounts.filter((a) => !a.config.models || a.config.models.includes(id)), cursor: 0 });
    }
    this.anyModel = { accounts: this.accounts.filter((a) => !a.config.models), cursor: 0 };
  }

  /**
   * A slot on an account serving `model`. Waits in the queue when every usable slot is busy.
   * Rejects with 503 `no_account` (nothing serves the model, or every account is unhealthy),
   * 503 `pool_exhausted` (queue full or `queue_timeout_ms` passed), `NoOtherAccountError` (see
   * there), or the signal's reason when it aborts first.
   */
  async acquire(model: string, options: AcquireOptions = {}): Promise<Lease> {
    const { signal, exclude } = options;
    signal?.throwIfAborted();
    const route = this.routes.get(model) ?? this.anyModel;
    if (route.accounts.length === 0) throw noAccount(model);
    let now = this.now();
    // A cooldown ended but its wake timer has not fired yet: the queue goes first.
    if (this.head !== null && this.wakeAt <= now) this.dispatch(true);
    let raced = false;
    for (let attempt = 0; attempt < MAX_RACES; attempt++) {
      const pick = selectAccount(route.accounts, this.ledger, now, exclude, route.cursor);
      if (pick < 0) {
        if (pick === WAIT_FOR_SLOT || (pick === WAIT_FOR_COOLDOWN && !isRetry(exclude))) break;
        throw this.unavailable(route, model, exclude, now);
      }
      const account = route.accounts[pick];
      const taken = this.ledger.tryAcquire(account.id, account.max);
      let token: SlotToken | null;
      if (isPromiseLike(taken)) {
        raced = true;
        token = await taken;
      } else {
        token = taken;
      }
      if (token !== null) {
        route.cursor = (pick + 1) % route.accounts.length;
        if (signal?.aborted) {
          // Only reachable after awaiting a shared ledger.
          this.releaseSlot(account, token);
          signal.throwIfAborted();
        }
        return this.lease(account, token);
      }
      now = this.now();
    }
    signal?.throwIfAborted();
    const waiting = this.enqueue(route, model, exclude, signal, now);
    // A slot freed while we awaited the ledger woke nobody: look again now that we are queued.
    if (raced) this.dispatch(false);
    return waiting;
  }

  /** The account answered: its consecutive failures (and any ejection) are over. */
  reportSuccess(accountId: string): void {
    const account = this.byId.get(accountId);
    if (account && account.health.recordSuccess(this.now()) && this.head !== null) this.dispatch(true);
  }

  /** An upstream failure on the account; see AccountHealth for what each kind does. */
  reportFailure(accountId: string, error: UpstreamError): void {
    const account = this.byId.get(accountId);
    if (!account || !account.health.recordFailure(error, this.now())) return;
    this.healthListener?.(accountId, account.health.marks());
    if (this.head !== null) this.dispatch(true);
  }

  /** Registers the one listener told of accounts this replica took out of service (shared state). */
  watchHealth(listener: HealthListener): void {
    this.healthListener = listener;
  }

  /** Restrictions another replica saw (a 429 cooldown, an ejection, an auth failure). */
  applySharedHealth(accountId: string, marks: HealthMarks): void {
    const account = this.byId.get(accountId);
    if (account && account.health.applyMarks(marks, this.now()) && this.head !== null) this.dispatch(true);
  }

  /**
   * A slot of the account was freed by another replica, or a shared ledger noticed a lease expire:
   * the queued requests here get their chance at it, oldest first.
   */
  slotFreedElsewhere(accountId: string): void {
    if (this.head !== null && this.byId.has(accountId)) this.dispatch(false);
  }

  addCredits(accountId: string, credits: number): void {
    const account = this.byId.get(accountId);
    if (account && Number.isFinite(credits) && credits > 0) account.health.creditsUsed += credits;
  }

  /**
   * Every configured account, in config order. An ejected account shows as `cooling_down` (it
   * comes back by itself at `cooldown_until`); only an auth failure shows as `unhealthy`, with
   * `cooldown_until` null.
   */
  snapshot(): AccountView[] {
    const now = this.now();
    return this.accounts.map((account) => {
      const state = account.health.state(now);
      const busy = this.ledger.busy(account.id);
      const status = state === 'healthy' ? 'healthy' : state === 'unhealthy' ? 'unhealthy' : 'cooling_down';
      const health = account.health;
      return {
        id: account.id,
        provider: account.config.provider,
        status,
        total_slots: account.max,
        busy_slots: busy,
        available_slots: state === 'healthy' ? Math.max(0, account.max - busy) : 0,
        cooldown_until: status === 'cooling_down' ? new Date(health.usableAt(now)).toISOString() : null,
        requests: health.requests,
        errors: health.errors,
        last_error: health.lastError,
        credits_used: Math.round(health.creditsUsed * 1e6) / 1e6,
      };
    });
  }

  totals(): PoolTotals {
    const now = this.now();
    let totalSlots = 0;
    let available = 0;
    for (const account of this.accounts) {
      totalSlots += account.max;
      if (account.health.state(now) === 'healthy') available += Math.max(0, account.max - this.ledger.busy(account.id));
    }
    return { accounts: this.accounts.length, total_slots: totalSlots, available_slots: available, queued: this.size };
  }

  /** Usable = healthy now; an ejected account still tried as the last resort does not count. */
  condition(): PoolCondition {
    const now = this.now();
    let usable = 0;
    for (const account of this.accounts) if (account.health.state(now) === 'healthy') usable++;
    const impaired = this.accounts.length - usable;
    return { status: usable === 0 ? 'unhealthy' : impaired > 0 ? 'degraded' : 'healthy', usable_accounts: usable, impaired_accounts: impaired };
  }

  queueDepth(): number {
    return this.size;
  }

  /** Queued requests end with 503 draining; no timer outlives the app. */
  onModuleDestroy(): void {
    while (this.head !== null) {
      const waiter = this.head;
      this.detach(waiter);
      waiter.reject(GatewayError.draining());
    }
    this.clearWake();
  }

  private lease(account: PoolAccount, token: SlotToken): Lease {
    account.health.requests++;
    return new PoolLease(account, token, this.giveBack);
  }

  private releaseSlot(account: PoolAccount, token: SlotToken): void {
    const done = this.ledger.release(account.id, token);
    if (!isPromiseLike(done)) {
      if (this.head !== null) this.dispatch(false);
      return;
    }
    done.then(
      () => {
        if (this.head !== null) this.dispatch(false);
      },
      (err: unknown) => {
        this.logger.warn(`slot release failed for account ${account.id}: ${(err as Error).message}`);
        if (this.head !== null) this.dispatch(false);
      },
    );
  }

  private enqueue(
    route: Route,
    model: string,
    exclude: ReadonlySet<string> | undefined,
    signal: AbortSignal | undefined,
    now: number,
  ): Promise<Lease> {
    if (this.size >= this.maxQueue) throw this.exhausted(route, now, true);
    return new Promise<Lease>((resolve, reject) => {
      const waiter = new Waiter(route, model, exclude, signal, resolve, reject);
      waiter.timer = setTimeout(() => {
        if (waiter.settled) return;
        this.detach(waiter);
        waiter.reject(this.exhausted(route, this.now(), false));
      }, this.queueTimeoutMs);
      if (signal) {
        waiter.onAbort = () => {
          if (waiter.settled) return;
          this.detach(waiter);
          waiter.reject(signal.reason);
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.append(waiter);
      this.scheduleWake(now);
    });
  }

  /**
   * Hands free slots to waiters, oldest first, each to the first waiter that can use it (a waiter
   * for another model never blocks it). `full` scans the whole queue even without a free slot, for
   * state changes that end some waits (every account unhealthy now, say).
   */
  private dispatch(full: boolean): void {
    const now = this.now();
    let free = full || this.anyFreeSlot(now);
    for (let waiter = this.head; waiter !== null && free; ) {
      const next = waiter.next;
      if (!waiter.pending) {
        const route = waiter.route;
        const pick = selectAccount(route.accounts, this.ledger, now, waiter.exclude, route.cursor);
        if (pick >= 0) {
          this.grant(waiter, pick);
          free = full || this.anyFreeSlot(now);
        } else if (pick === NO_CANDIDATE || (pick === WAIT_FOR_COOLDOWN && isRetry(waiter.exclude))) {
          this.detach(waiter);
          waiter.reject(this.unavailable(route, waiter.model, waiter.exclude, now));
        }
      }
      waiter = next;
    }
    this.scheduleWake(now);
  }

  private grant(waiter: Waiter, pick: number): void {
    const route = waiter.route;
    const account = route.accounts[pick];
    const taken = this.ledger.tryAcquire(account.id, account.max);
    if (!isPromiseLike(taken)) {
      if (taken !== null) this.hand(waiter, route, pick, taken);
      return;
    }
    waiter.pending = true;
    taken.then(
      (token) => {
        waiter.pending = false;
        if (token === null) {
          if (!waiter.settled) this.dispatch(true);
        } else if (waiter.settled) {
          this.releaseSlot(account, token);
        } else {
          this.hand(waiter, route, pick, token);
        }
      },
      (err: unknown) => {
        waiter.pending = false;
        if (waiter.settled) return;
        this.detach(waiter);
        waiter.reject(err);
      },
    );
  }

  private hand(waiter: Waiter, route: Route, pick: number, token: SlotToken): void {
    route.cursor = (pick + 1) % route.accounts.length;
    this.detach(waiter);
    waiter.resolve(this.lease(route.accounts[pick], token));
  }

  /** A slot a waiter could take: free on a healthy account, or on an ejected one (the fallback). */
  private anyFreeSlot(now: number): boolean {
    for (const account of this.accounts) {
      const state = account.health.state(now);
      if ((state === 'healthy' || state === 'ejected') && this.ledger.busy(account.id) < account.max) return true;
    }
    return false;
  }

  /** Wakes the queue when the next cooldown, ejection or auth recheck ends; only while someone waits. */
  private scheduleWake(now: number): void {
    if (this.head === null) {
      this.clearWake();
      return;
    }
    let next = Infinity;
    for (const account of this.accounts) {
      const at = account.health.nextChangeAt(now);
      if (at < next) next = at;
    }
    if (next >= this.wakeAt) return;
    this.clearWake();
    this.wakeAt = Math.min(next, now + MAX_WAKE_DELAY_MS);
    // +1: the state is computed lazily as `until > now`, so wake just after the instant.
    this.wakeTimer = setTimeout(this.onWake, this.wakeAt - now + 1);
  }

  private clearWake(): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.wakeAt = Infinity;
  }

  /** When nothing can be tried: a retry hears NoOtherAccount, a first attempt 503 no_account. */
  private unavailable(route: Route, model: string, exclude: ReadonlySet<string> | undefined, now: number): GatewayError {
    if (isRetry(exclude)) return new NoOtherAccountError();
    return new GatewayError(
      503,
      'service_unavailable',
      'no_account',
      `No healthy account can serve the model '${truncate(model)}' right now.`,
      null,
      this.retryAfterSeconds(route, now),
    );
  }

  private exhausted(route: Route, now: number, queueFull: boolean): GatewayError {
    const message = queueFull
      ? 'Every upstream slot is busy and the wait queue is full; retry later.'
      : 'No upstream slot became free in time; retry later.';
    return new GatewayError(503, 'service_unavailable', 'pool_exhausted', message, null, this.retryAfterSeconds(route, now));
  }

  /**
   * For a fresh request (exclusions do not carry over): 1 s when some account serving the model
   * is usable (only busy), else the time until the first of them comes back (DESIGN §6.11).
   */
  private retryAfterSeconds(route: Route, now: number): number {
    let first = Infinity;
    for (const account of route.accounts) {
      const at = account.health.usableAt(now);
      if (at === 0) return 1;
      if (at < first) first = at;
    }
    return first === Infinity ? 1 : Math.max(1, Math.ceil((first - now) / 1000));
  }

  private append(waiter: Waiter): void {
    waiter.prev = this.tail;
    if (this.tail) this.tail.next = waiter;
    else this.head = waiter;
    this.tail = waiter;
    this.size++;
    if (this.ledger.setWaiting) this.countWaiting(waiter, 1);
  }

  /** Tells a shared ledger when this replica starts and stops waiting for each account. */
  private countWaiting(waiter: Waiter, delta: 1 | -1): void {
    for (const account of waiter.route.accounts) {
      if (waiter.exclude?.has(account.id)) continue;
      const count = (this.waitingFor.get(account.id) ?? 0) + delta;
      this.waitingFor.set(account.id, count);
      if (count === 0 || (count === 1 && delta === 1)) this.ledger.setWaiting!(account.id, count > 0);
    }
  }

  /** Takes a waiter out of the queue for good: its timer, abort listener and links. */
  private detach(waiter: Waiter): void {
    waiter.settled = true;
    clearTimeout(waiter.timer);
    if (waiter.onAbort) waiter.signal!.removeEventListener('abort', waiter.onAbort);
    if (waiter.prev) waiter.prev.next = waiter.next;
    else this.head = waiter.next;
    if (waiter.next) waiter.next.prev = waiter.prev;
    else this.tail = waiter.prev;
    waiter.prev = waiter.next = null;
    this.size--;
    if (this.ledger.setWaiting) this.countWaiting(waiter, -1);
    if (this.head === null) this.clearWake();
  }
}

function isRetry(exclude: ReadonlySet<string> | undefined): boolean {
  return exclude !== undefined && exclude.size > 0;
}

function noAccount(model: string): GatewayError {
  return new GatewayError(
    503,
    'service_unavailable',
    'no_account',
    `No configured account serves the model '${truncate(model)}'.`,
    null,
    NO_ACCOUNT_RETRY_AFTER_S,
  );
}
