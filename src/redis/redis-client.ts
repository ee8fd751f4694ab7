import { Redis, type RedisOptions } from 'ioredis';

/**
 * Options that make every command fail within ~100 ms while Redis is unreachable (DESIGN §6.6)
 * and bring the client back by itself when Redis returns.
 */
export const REDIS_FAST_FAIL_OPTIONS: Readonly<RedisOptions> = {
  // A connected but silent Redis (partition, stall): each command gives up after 100 ms.
  commandTimeout: 100,
  // While disconnected, commands fail at once instead of queueing: a queued rate-limit hit could
  // run minutes later and consume a slot for a request that was long since answered.
  enableOfflineQueue: false,
  // Commands in flight when the connection drops fail at once; never replayed after a reconnect,
  // for the same reason.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  connectTimeout: 1000,
  // Commands issued in the same tick (concurrent requests' rate-limit and slot scripts) go out in
  // one write: fewer syscalls per request under load, no extra latency alone.
  enableAutoPipelining: true,
  // Keep reconnecting forever in the background, at most one second apart.
  retryStrategy: (attempt: number) => Math.min(attempt * 50, 1000),
};

/**
 * The shared ioredis client. It connects at once and reconnects forever; until it is ready,
 * commands reject immediately. Errors are handled here so reconnect noise never becomes an
 * unhandled 'error' event; callers that want to count or log them add their own listener
 * (ioredis errors never include the URL's password).
 */
export function createRedisClient(url: string, options: RedisOptions = {}): Redis {
  const client = new Redis(url, { ...REDIS_FAST_FAIL_OPTIONS, ...options });
  client.on('error', ignore);
  return client;
}

/** Resolves true once the client is ready, false if it is not within `timeoutMs`; never rejects. */
export function whenRedisReady(client: Redis, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return Promise.resolve(true);
  if (client.status === 'wait') client.connect().catch(ignore);
  return new Promise((resolve) => {
    const onReady = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      resolve(false);
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

function ignore(): void {}
