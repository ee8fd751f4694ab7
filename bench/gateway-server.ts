/*
 * G: Drawbridge in its own process, through `startGateway` exactly as `npm start` runs it, against
 * real Postgres and Redis, serving model `bench` from one `openai` account that points at the
 * fake upstream. Variants, for the cost rows of DESIGN §7:
 * - `full`: everything on.
 * - `full-via-factory`: everything on, the app built through the same testing-module factory as
 *   the two below: the like-for-like baseline of their cost rows.
 * - `usage-off`: the UsageWriter is a no-op (no usage rows, no batched INSERTs).
 * - `auth-rl-usage-off`: KeyAuthenticator, the rate-limit store and the UsageWriter are no-ops:
 *   no SHA-256 and key-cache lookup, no rate-limit script in Redis, no usage record. The guard,
 *   the interceptors, slots (leased in Redis when REDIS_URL is set), metrics and the relay still run.
 * Started by bench.ts with `fork`; the spec comes as JSON in argv[2]. It creates its own admin
 * token and one key (rate limit 1,000,000/min) and hands the key to the parent over IPC only.
 */
import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { writeHeapSnapshot } from 'node:v8';
import { buildConfig } from '../src/config/config.loader';
import { AppFactory, startGateway } from '../src/gateway';
import type { AuthenticatedKey } from '../src/keys/authenticated-key';
import { KeyAuthenticator } from '../src/keys/key-authenticator';
import type { RateLimitDecision, RateLimitStore } from '../src/rate-limit/rate-limit-store';
import { RATE_LIMIT_STORE } from '../src/rate-limit/rate-limit.tokens';
import { UsageWriter } from '../src/usage/usage-writer';
import { withProviders } from '../test/support/test-gateway';
import { serveIpc } from './ipc';
import { WaitTimer } from './wait-timer';

export type GatewayVariant = 'full' | 'full-via-factory' | 'usage-off' | 'auth-rl-usage-off';

export interface GatewaySpec {
  variant: GatewayVariant;
  /** The fake upstream's base URL, `/v1` included. */
  upstreamUrl: string;
  databaseUrl: string;
  redisUrl: string;
  redisKeyPrefix: string;
  /** Slots of the one account; also bounds its undici connections. */
  slots: number;
  maxQueue: number;
  logLevel: string;
}

export const BENCH_MODEL = 'bench';
const BENCH_ACCOUNT = 'bench-upstream';
const RATE_LIMIT = 1_000_000;

/** Stand-ins for the `auth-rl-usage-off` variant: the same calls, no work behind them. */
const noUsage: Pick<UsageWriter, 'record' | 'pending' | 'flush'> = {
  record: () => undefined,
  pending: () => 0,
  flush: async () => undefined,
};

function noAuth(): Pick<KeyAuthenticator, 'authenticate' | 'invalidate' | 'addCreditsUsed'> {
  const key: AuthenticatedKey = {
    id: randomUUID(),
    keyHash: '',
    rateLimitPerMinute: RATE_LIMIT,
    models: null,
    expiresAtMs: null,
    revoked: false,
    creditLimit: null,
    creditsUsed: 0,
  };
  return {
    authenticate: () => Promise.resolve(key),
    invalidate: () => undefined,
    addCreditsUsed: () => undefined,
  };
}

const noRateLimit: RateLimitStore = {
  hit: (_bucket: string, limit: number, windowMs: number): Promise<RateLimitDecision> => {
    const now = Date.now();
    return Promise.resolve({ allowed: true, limit, remaining: limit - 1, resetAtMs: now + windowMs, nowMs: now });
  },
};

function appFactory(variant: GatewayVariant): AppFactory | undefined {
  if (variant === 'full') return undefined;
  const overrides: Array<[unknown, unknown]> = [];
  if (variant !== 'full-via-factory') overrides.push([UsageWriter, noUsage]);
  if (variant === 'auth-rl-usage-off') overrides.push([KeyAuthenticator, noAuth()], [RATE_LIMIT_STORE, noRateLimit]);
  return withProviders(overrides);
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2] ?? '') as GatewaySpec;
  const adminToken = `bench-admin-${randomBytes(24).toString('hex')}`;
  const config = buildConfig(
    {
      server: { port: 0, host: '127.0.0.1', drain_timeout_ms: 1000 },
      rate_limit: { default_per_minute: RATE_LIMIT },
      pool: { max_queue: spec.maxQueue, queue_timeout_ms: 30_000 },
      redis: { key_prefix: spec.redisKeyPrefix },
      models: [{ id: BENCH_MODEL, upstream_model: 'gpt-4o-mini', credits: { per_request: 0, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 5 } }],
      accounts: [
        {
          id: BENCH_ACCOUNT,
          provider: 'openai',
          base_url: spec.upstreamUrl,
          api_key: `sk-bench-${randomBytes(12).toString('hex')}`,
          max_concurrency: spec.slots,
        },
      ],
    },
    { DATABASE_URL: spec.databaseUrl, REDIS_URL: spec.redisUrl, DRAWBRIDGE_ADMIN_TOKEN: adminToken, LOG_LEVEL: spec.logLevel },
    `bench (${spec.variant})`,
  );
  const gateway = await startGateway(config, appFactory(spec.variant));

  const res = await fetch(`${gateway.url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `bench ${spec.variant}`, rate_limit_per_minute: RATE_LIMIT }),
  });
  if (res.status !== 201) throw new Error(`creating the bench key failed: HTTP ${res.status}`);
  const { key } = (await res.json()) as { key: string };

  const inspector = new Session();
  inspector.connect();
  let waits: WaitTimer | undefined;
  serveIpc({
    /** From the first call on, this instance times its Redis and upstream waits (see WaitTimer). */
    takeWaits: () => (waits ??= new WaitTimer(gateway.app, BENCH_ACCOUNT)).take(),
    /** This process's monotonic clock in µs: the time base of a --cpu-prof profile. */
    mark: () => Number(process.hrtime.bigint() / 1000n),
    gc: () => {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (!gc) return false;
      gc();
      return true;
    },
    memory: () => process.memoryUsage(),
    heapSnapshot: (path) => writeHeapSnapshot(path as string),
    /** Sampling allocation profile, collected objects included: where the garbage comes from. */
    allocationStart: () => inspector.post('HeapProfiler.startSampling', { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: process.env.ALLOC_MINOR !== '0' }),
    allocationStop: async (path) => {
      const { profile } = (await inspector.post('HeapProfiler.stopSampling')) as { profile: unknown };
      writeFileSync(path as string, JSON.stringify(profile));
      return true;
    },
    stop: async () => {
      await gateway.close();
      return true;
    },
  });
  process.send!({ event: 'ready', url: gateway.url, key });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`gateway failed to start: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
