import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Inject, Injectable, Logger, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { APP_CONFIG, AppConfig } from '../config/app-config';
import { REDIS } from '../redis/redis.module';
import type { HealthMarks } from './account-health';
import { AccountPool } from './account-pool.service';
import { RedisSlotLedger } from './redis-slot-ledger';
import { SLOT_LEDGER, SlotLedger } from './slot-ledger';

/**
 * KEYS: the account's cooldown_until, ejected_until, unhealthy_until keys. ARGV: the three
 * remaining durations in ms (0 = none), then the three instants (the keys' values, for
 * operators), channel, message. A mark only ever gets longer.
 */
const MARK_LUA = `
for i = 1, 3 do
  local ms = tonumber(ARGV[i])
  if ms > 0 and redis.call('PTTL', KEYS[i]) < ms then redis.call('SET', KEYS[i], ARGV[i + 3], 'PX', ms) end
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 1
`;
const MARK = 'drawbridgeAccountMark';

interface MarkCommand {
  [MARK](cooldown: string, ejected: string, unhealthy: string, ...args: Array<string | number>): Promise<number>;
}

/** How long start-up waits for the subscription (Redis may be down: the gateway starts anyway). */
const SUBSCRIBE_WAIT_MS = 2000;
const MARK_NAMES = ['cooldown_until', 'ejected_until', 'unhealthy_until'] as const;
/** A mark longer than this in a message is not believed. */
const MAX_MARK_MS = 7 * 24 * 3600_000;

/** The `accounts:changed` message: remaining durations, so clock skew between replicas does not matter. */
interface MarksMessage {
  from: string;
  id: string;
  cooldown_ms: number;
  ejected_ms: number;
  unhealthy_ms: number;
}

/**
 * What replicas share through Redis beyond the slot leases (DESIGN §4 "Scale-out"):
 * - `slots:freed` (message: account id), published by the ledger's release script: each replica
 *   hands the freed slot to its own queue, oldest first.
 * - account restrictions: a 429 cooldown, an ejection or an auth failure seen by one replica is
 *   written to `acct:<id>:<mark>` (expiring with the mark) and announced on `accounts:changed`;
 *   every replica applies it, and one that starts (or resubscribes) later reads the keys.
 * Without Redis this does nothing; while Redis is down, each replica keeps its own view.
 */
@Injectable()
export class FleetSync implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(FleetSync.name);
  private readonly replicaId = randomBytes(9).toString('base64url');
  private readonly prefix: string;
  private readonly accountsChannel: string;
  private readonly accountIds: string[];
  private subscriber?: Redis;
  private shareFailing = false;

  constructor(
    private readonly pool: AccountPool,
    @Inject(SLOT_LEDGER) private readonly ledger: SlotLedger,
    @Inject(APP_CONFIG) config: AppConfig,
    @Optional() @Inject(REDIS) private readonly redis: Redis | null,
  ) {
    this.prefix = config.redis_key_prefix;
    this.accountsChannel = `${config.redis_key_prefix}accounts:changed`;
    this.accountIds = config.accounts.map((a) => a.id);
  }

  async onModuleInit(): Promise<void> {
    const redis = this.redis;
    if (!redis) return;
    const ledger = this.ledger instanceof RedisSlotLedger ? this.ledger : undefined;
    if (ledger) {
      ledger.onFreed = (id) => this.pool.slotFreedElsewhere(id);
      ledger.start();
    }
    redis.defineCommand(MARK, { numberOfKeys: 3, lua: MARK_LUA });
    this.pool.watchHealth((id, marks) => void this.share(id, marks));

    // A subscribed connection can do nothing else, so it gets its own; it resubscribes by itself
    // after a reconnect, and then reads the marks it may have missed. SUBSCRIBE waits for the
    // connection (no 100 ms timeout: a busy start-up would lose the subscription for good), and
    // start-up waits for it only briefly, so a Redis that is down cannot hold the gateway back.
    const subscriber = (this.subscriber = redis.duplicate({ enableOfflineQueue: true, commandTimeout: undefined }));
    subscriber.on('error', ignore);
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === this.accountsChannel) this.onMarks(message);
      else if (ledger && channel === ledger.freedChannel) {
        ledger.noteFreed(message);
        this.pool.slotFreedElsewhere(message);
      }
    });
    subscriber.on('ready', () => void this.loadMarks());
    const subscribed = subscriber.subscribe(...(ledger ? [ledger.freedChannel, this.accountsChannel] : [this.accountsChannel])).then(
      () => undefined,
      (err: unknown) => {
        this.logger.warn(`pool subscription failed (${(err as Error).message}); replicas learn of freed slots by polling only`);
      },
    );
    await Promise.race([subscribed, sleep(SUBSCRIBE_WAIT_MS, undefined, { ref: false })]);
    await this.loadMarks();
  }

  onApplicationShutdown(): void {
    if (this.ledger instanceof RedisSlotLedger) this.ledger.stop();
    this.subscriber?.disconnect();
  }

  /** Writes the account's restrictions (each key expiring with its mark) and tells every replica. */
  private async share(id: string, marks: HealthMarks): Promise<void> {
    const now = Date.now();
    const until = [marks.cooldownUntil, marks.ejectedUntil, marks.unhealthyUntil];
    const ms = until.map((at) => Math.max(0, at - now));
    const message: MarksMessage = { from: this.replicaId, id, cooldown_ms: ms[0], ejected_ms: ms[1], unhealthy_ms: ms[2] };
    try {
      await (this.redis as Redis & MarkCommand)[MARK](
        ...this.markKeys(id),
        ...ms,
        ...until.map((at) => (at > now ? new Date(at).toISOString() : '')),
        this.accountsChannel,
        JSON.stringify(message),
      );
      this.shareFailing = false;
    } catch (err) {
      if (!this.shareFailing) this.logger.warn(`could not share the state of account ${id} (${(err as Error).message}); other replicas find out by themselves`);
      this.shareFailing = true;
    }
  }

  private onMarks(raw: string): void {
    let message: Partial<MarksMessage>;
    try {
      message = JSON.parse(raw) as Partial<MarksMessage>;
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object' || message.from === this.replicaId) return;
    if (typeof message.id !== 'string' || !this.accountIds.includes(message.id)) return;
    this.apply(message.id, [message.cooldown_ms, message.ejected_ms, message.unhealthy_ms]);
  }

  /** Reads every account's marks: at start and after a resubscribe, for messages missed meanwhile. */
  private async loadMarks(): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status !== 'ready') return;
    try {
      const pipeline = redis.pipeline();
      for (const id of this.accountIds) for (const key of this.markKeys(id)) pipeline.pttl(key);
      const results = (await pipeline.exec()) ?? [];
      this.accountIds.forEach((id, i) => {
        this.apply(id, [0, 1, 2].map((k) => results[i * 3 + k]?.[1]));
      });
    } catch (err) {
      this.logger.warn(`could not read shared account state (${(err as Error).message})`);
    }
  }

  private apply(id: string, remaining: unknown[]): void {
    const now = Date.now();
    const until = remaining.map((ms) => (typeof ms === 'number' && ms > 0 && ms <= MAX_MARK_MS ? now + ms : 0));
    if (until.every((at) => at === 0)) return;
    this.pool.applySharedHealth(id, { cooldownUntil: until[0], ejectedUntil: until[1], unhealthyUntil: until[2] });
  }

  private markKeys(id: string): [string, string, string] {
    const base = `${this.prefix}acct:${id}:`;
    return [base + MARK_NAMES[0], base + MARK_NAMES[1], base + MARK_NAMES[2]];
  }
}

function ignore(): void {}
