import { randomBytes } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { ChainableCommander, Redis } from 'ioredis';
import type { SlotLedger, SlotToken } from './slot-ledger';

/*
 * Keys, all under the deployment's prefix:
 * - `slots:<account>`   sorted set of leases: member = lease token, score = expiry (Redis TIME, ms).
 * - `waiting:<account>` sorted set of replicas with queued requests that could use the account:
 *                       member = replica id, score = its place in line. The first live one goes
 *                       first: the others' acquires on that account are refused (`blocked`) until it
 *                       has taken a slot, which sends it to the back. FIFO per replica, round robin
 *                       between replicas, so no replica starves another.
 * - `replicas`          sorted set of live replicas: member = replica id, score = heartbeat expiry.
 * Every script reads Redis's own clock, so clock skew between replicas changes nothing.
 */
const PRELUDE = `
if redis.replicate_commands then redis.replicate_commands() end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local function blocked(waiting, replicas, me)
  local members = redis.call('ZRANGE', waiting, 0, -1)
  for i = 1, #members do
    local member = members[i]
    if member == me then return 0 end
    local alive = redis.call('ZSCORE', replicas, member)
    if alive and tonumber(alive) > now then return 1 end
    redis.call('ZREM', waiting, member)
  end
  return 0
end
local function to_back(waiting, me, mode)
  local last = redis.call('ZRANGE', waiting, -1, -1, 'WITHSCORES')
  local turn = now
  if last[2] and tonumber(last[2]) >= turn then turn = tonumber(last[2]) + 1 end
  redis.call('ZADD', waiting, mode, turn, me)
end
`;

/**
 * KEYS: slots, waiting, replicas. ARGV: max, leaseMs, token, replica.
 * Returns {admitted 0|1, leases after, blocked 0|1}.
 */
const ACQUIRE_LUA = `${PRELUDE}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local count = redis.call('ZCARD', KEYS[1])
local refused = blocked(KEYS[2], KEYS[3], ARGV[4])
if count >= tonumber(ARGV[1]) or refused == 1 then return {0, count, refused} end
local lease = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
redis.call('PEXPIRE', KEYS[1], lease)
if redis.call('ZSCORE', KEYS[2], ARGV[4]) then to_back(KEYS[2], ARGV[4], 'XX') end
return {1, count + 1, 0}
`;

/**
 * KEYS: slots, waiting, replicas. ARGV: token, channel, account, replica.
 * Publishes the account id when a slot came free. Returns {leases after, blocked 0|1}.
 */
const RELEASE_LUA = `${PRELUDE}
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local expired = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if removed + expired > 0 then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return {redis.call('ZCARD', KEYS[1]), blocked(KEYS[2], KEYS[3], ARGV[4])}
`;

/**
 * The periodic sync of one account. KEYS: slots, waiting, replicas. ARGV: replica, leaseMs,
 * waiting 0|1, n, then n lease tokens to renew, then tokens to drop (leases this replica gave up
 * while Redis was unreachable). Renewal re-adds a lease that expired meanwhile: its request is
 * still running, and the truth is better than a count that lets another replica overshoot.
 * Returns {leases after, blocked 0|1}.
 */
const SYNC_LUA = `${PRELUDE}
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[3], lease)
local n = tonumber(ARGV[4])
for i = 5, 4 + n do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
if n > 0 then redis.call('PEXPIRE', KEYS[1], lease) end
for i = 5 + n, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[3] == '1' then
  if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then to_back(KEYS[2], ARGV[1], 'NX') end
  redis.call('PEXPIRE', KEYS[2], lease * 2)
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return {redis.call('ZCARD', KEYS[1]), blocked(KEYS[2], KEYS[3], ARGV[1])}
`;

/** KEYS: waiting, replicas. ARGV: replica, leaseMs, waiting 0|1. */
const WAIT_LUA = `${PRELUDE}
if ARGV[3] == '1' then
  local lease = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], lease)
  if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then to_back(KEYS[1], ARGV[1], 'NX') end
  redis.call('PEXPIRE', KEYS[1], lease * 2)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return 1
`;

const ACQUIRE = 'drawbridgeSlotAcquire';
const RELEASE = 'drawbridgeSlotRelease';
const SYNC = 'drawbridgeSlotSync';
const WAIT = 'drawbridgeSlotWait';

type Arg = string | number;

interface SlotCommands<R> {
  [ACQUIRE](slots: string, waiting: string, replicas: string, max: number, leaseMs: number, token: string, replica: string): R;
  [RELEASE](slots: string, waiting: string, replicas: string, token: string, channel: string, account: string, replica: string): R;
  [SYNC](slots: string, waiting: string, replicas: string, ...args: Arg[]): R;
  [WAIT](waiting: string, replicas: string, replica: string, leaseMs: number, flag: number): R;
}

/** Held only in this process: a lease taken while Redis was unreachable. Redis leases are strings. */
const LOCAL_TOKEN = 0;
/** Lease tokens given up while Redis was unreachable, dropped from Redis when it returns (they expire anyway). */
const MAX_ORPHANS = 1000;

/** What this replica knows of one account's slots. */
class AccountSlots {
  /** Fleet-wide leases in Redis (ours included), as last learnt. */
  fleet = 0;
  /** Another replica's queued requests go first: new leases here would be refused. */
  blocked = false;
  /** Acquires sent to Redis and not answered yet. */
  pending = 0;
  /** Leases taken while Redis was unreachable; never in Redis. */
  local = 0;
  /** Our Redis leases, renewed while their requests run. */
  readonly held = new Set<string>();
  orphans: string[] = [];
  /** This replica has queued requests that could use the account. */
  waiting = false;

  constructor(
    readonly id: string,
    public max: number,
    readonly slotsKey: string,
    readonly waitingKey: string,
  ) {}
}

export interface RedisSlotLedgerOptions {
  /** `redis_key_prefix`. */
  keyPrefix: string;
  /** How long a lease lives without renewal (`pool.lease_ms`). */
  leaseMs: number;
  /** The configured accounts, followed from the start. */
  accounts: ReadonlyArray<{ id: string; max: number }>;
  /** How often fleet-wide counts are refreshed; default 1 s. */
  refreshMs?: number;
}

/**
 * Slot leases shared by every replica through Redis (DESIGN §4 "Scale-out"): one script call per
 * acquire and one per release, each atomic, so busy slots across the fleet never exceed an
 * account's `max_concurrency`. Each lease expires `leaseMs` after its last renewal; one pipelined
 * call per replica renews them all every third of that, so a replica killed outright gives its
 * slots back within `leaseMs`.
 *
 * `busy` answers from a per-account cache refreshed by every acquire and release answer, by the
 * periodic sync (default every second) and by the `slots:freed` hint (`noteFreed`).
 *
 * While Redis is unreachable (a command failed; every command fails within ~100 ms) new leases are
 * counted in this process: up to `max` per account **per replica**, so the fleet may then hold up
 * to replicas × max. The sync notices Redis is back and shared counting resumes by itself. A lease
 * is given back where it was taken: a local one never touches Redis, a Redis one never the local
 * count (if Redis cannot be told, the lease stops being renewed and expires).
 *
 * Each script touches one account's keys and the shared `replicas` set: one Redis server (with
 * or without read replicas), not Redis Cluster.
 */
export class RedisSlotLedger implements SlotLedger {
  /** Unique per process: names this replica's leases and its place in the waiting lines. */
  readonly replicaId = randomBytes(9).toString('base64url');
  /** Told when an account has room this replica did not know of (a lease expired, a hint was missed). */
  onFreed: ((accountId: string) => void) | undefined;
  readonly freedChannel: string;
  private readonly logger = new Logger(RedisSlotLedger.name);
  private readonly redis: Redis & SlotCommands<Promise<number[]>>;
  private readonly slots = new Map<string, AccountSlots>();
  private readonly keyPrefix: string;
  private readonly replicasKey: string;
  private readonly leaseMs: number;
  private readonly tickMs: number;
  private readonly renewEveryMs: number;
  private up: boolean;
  /** An outage was logged: its end is logged too. */
  private outage = false;
  private sequence = 0;
  private renewedAt = 0;
  private syncing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly onReady = (): void => void this.sync();

  constructor(redis: Redis, options: RedisSlotLedgerOptions) {
    redis.defineCommand(ACQUIRE, { numberOfKeys: 3, lua: ACQUIRE_LUA });
    redis.defineCommand(RELEASE, { numberOfKeys: 3, lua: RELEASE_LUA });
    redis.defineCommand(SYNC, { numberOfKeys: 3, lua: SYNC_LUA });
    redis.defineCommand(WAIT, { numberOfKeys: 2, lua: WAIT_LUA });
    this.redis = redis as Redis & SlotCommands<Promise<number[]>>;
    this.keyPrefix = options.keyPrefix;
    this.replicasKey = `${options.keyPrefix}replicas`;
    this.freedChannel = `${options.keyPrefix}slots:freed`;
    this.leaseMs = options.leaseMs;
    this.tickMs = Math.max(50, Math.min(options.refreshMs ?? 1000, Math.floor(options.leaseMs / 3)));
    // Renew on the tick that lands nearest a third of the lease: two renewals may fail in a row.
    this.renewEveryMs = options.leaseMs / 3 - this.tickMs / 2;
    this.up = redis.status === 'ready';
    for (const { id, max } of options.accounts) this.account(id, max);
  }

  /** Starts the periodic sync (heartbeat, renewals, fleet-wide counts), with one right away. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.sync(), this.tickMs);
    this.timer.unref();
    this.redis.on('ready', this.onReady);
    void this.sync();
  }

  /** Stops syncing; leases still held expire by themselves. */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.redis.off('ready', this.onReady);
    if (this.ready()) this.redis.zrem(this.replicasKey, this.replicaId).catch(ignore);
  }

  /** True while leases are shared through Redis; false while counting per replica. */
  get shared(): boolean {
    return this.up;
  }

  busy(accountId: string): number {
    const s = this.slots.get(accountId);
    if (s === undefined) return 0;
    if (!this.up) return s.held.size + s.local + s.pending;
    const busy = s.fleet + s.pending + s.local;
    return s.blocked && busy < s.max ? s.max : busy;
  }

  tryAcquire(accountId: string, max: number): Promise<SlotToken | null> | SlotToken | null {
    const s = this.account(accountId, max);
    if (!this.ready()) return this.acquireLocally(s);
    const token = `${this.replicaId}.${(this.sequence++).toString(36)}`;
    s.pending++;
    // Our own local leases (taken while Redis was away) still run: they count against us here.
    return this.redis[ACQUIRE](s.slotsKey, s.waitingKey, this.replicasKey, max - s.local, this.leaseMs, token, this.replicaId).then(
      ([admitted, count, blocked]) => {
        const before = this.busy(accountId);
        s.pending--;
        s.fleet = count;
        s.blocked = blocked === 1;
        if (admitted === 1) s.held.add(token);
        // The cached count was too high (a release elsewhere not heard of yet): requests queued
        // here meanwhile must hear of the room, or they would wait for the next change.
        if (this.busy(accountId) < before - (admitted === 1 ? 0 : 1)) this.onFreed?.(accountId);
        return admitted === 1 ? token : null;
      },
      (err: unknown) => {
        s.pending--;
        // It may have been admitted before the timeout: drop it when Redis is back.
        this.orphan(s, token);
        this.markDown(err);
        return this.acquireLocally(s);
      },
    );
  }

  release(accountId: string, token: SlotToken): Promise<void> | void {
    const s = this.slots.get(accountId);
    if (s === undefined) return;
    if (typeof token === 'number') {
      if (s.local > 0) s.local--;
      return;
    }
    if (!s.held.delete(token)) return;
    if (!this.ready()) {
      this.orphan(s, token);
      return;
    }
    return this.redis[RELEASE](s.slotsKey, s.waitingKey, this.replicasKey, token, this.freedChannel, accountId, this.replicaId).then(
      ([count, blocked]) => {
        s.fleet = count;
        s.blocked = blocked === 1;
      },
      (err: unknown) => {
        this.orphan(s, token);
        this.markDown(err);
      },
    );
  }

  setWaiting(accountId: string, waiting: boolean): void {
    const s = this.slots.get(accountId);
    if (s === undefined || s.waiting === waiting) return;
    s.waiting = waiting;
    // Best effort: the next sync states it again either way.
    if (this.ready()) this.redis[WAIT](s.waitingKey, this.replicasKey, this.replicaId, this.leaseMs, waiting ? 1 : 0).catch(ignore);
  }

  /** Another replica freed a slot of the account (`slots:freed`): worth a try before the next sync. */
  noteFreed(accountId: string): void {
    const s = this.slots.get(accountId);
    if (s === undefined) return;
    s.blocked = false;
    const atMost = Math.max(0, s.max - 1 - s.pending - s.local);
    if (s.fleet > atMost) s.fleet = atMost;
  }

  /** One pipelined round trip: heartbeat, due renewals, orphans dropped, counts refreshed. */
  async sync(): Promise<void> {
    if (this.syncing) return;
    if (this.redis.status !== 'ready') {
      this.markDown(new Error(`connection ${this.redis.status}`));
      return;
    }
    this.syncing = true;
    const accounts = [...this.slots.values()];
    const renew = Date.now() - this.renewedAt >= this.renewEveryMs;
    const orphans = accounts.map((s) => s.orphans);
    let freed: string[] = [];
    try {
      const pipeline = this.redis.pipeline() as ChainableCommander & SlotCommands<ChainableCommander>;
      accounts.forEach((s, i) => {
        const tokens = renew ? [...s.held] : [];
        s.orphans = [];
        pipeline[SYNC](s.slotsKey, s.waitingKey, this.replicasKey, this.replicaId, this.leaseMs, s.waiting ? 1 : 0, tokens.length, ...tokens, ...orphans[i]);
      });
      const results = await pipeline.exec();
      if (results === null) throw new Error('the sync pipeline was discarded');
      const before = accounts.map((s) => this.busy(s.id));
      accounts.forEach((s, i) => {
        const [err, reply] = results[i];
        if (err) throw err;
        const [count, blocked] = reply as number[];
        s.fleet = count;
        s.blocked = blocked === 1;
      });
      if (renew) this.renewedAt = Date.now();
      this.markUp();
      // Also any account with a slot free while requests here wait for it: a safety net, so no
      // missed hint can leave a request queued next to a free slot for longer than one tick.
      freed = accounts.filter((s, i) => this.busy(s.id) < before[i] || (s.waiting && this.busy(s.id) < s.max)).map((s) => s.id);
    } catch (err) {
      accounts.forEach((s, i) => {
        for (const token of orphans[i]) this.orphan(s, token);
      });
      this.markDown(err);
    } finally {
      this.syncing = false;
    }
    for (const id of freed) this.onFreed?.(id);
  }

  private ready(): boolean {
    return this.up && this.redis.status === 'ready';
  }

  private acquireLocally(s: AccountSlots): SlotToken | null {
    if (s.held.size + s.local + s.pending >= s.max) return null;
    s.local++;
    return LOCAL_TOKEN;
  }

  private account(id: string, max: number): AccountSlots {
    let s = this.slots.get(id);
    if (s === undefined) {
      s = new AccountSlots(id, max, `${this.keyPrefix}slots:${id}`, `${this.keyPrefix}waiting:${id}`);
      this.slots.set(id, s);
    } else if (s.max !== max) {
      s.max = max;
    }
    return s;
  }

  private orphan(s: AccountSlots, token: string): void {
    if (s.orphans.length < MAX_ORPHANS) s.orphans.push(token);
  }

  private markDown(err: unknown): void {
    this.renewedAt = 0;
    if (!this.up) return;
    this.up = false;
    this.outage = true;
    this.logger.warn(`Redis unreachable (${(err as Error).message}): slots are counted per replica until it returns`);
    // Per-replica counts are lower than the fleet's: queued requests may go ahead now.
    setImmediate(() => {
      for (const id of this.slots.keys()) this.onFreed?.(id);
    });
  }

  private markUp(): void {
    if (this.up) return;
    this.up = true;
    if (this.outage) this.logger.log('Redis reachable again: slot leases are shared by every replica');
    this.outage = false;
  }
}

function ignore(): void {}
