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
  // Off: its Pipeline object per batch cost more CPU per command than it saved, and made most of
  // the gateway's garbage. Commands are coalesced by writeOncePerTick instead.
  enableAutoPipelining: false,
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
  writeOncePerTick(client);
  return client;
}

/**
 * Commands issued in the same tick (concurrent requests' rate-limit and slot scripts) leave in one
 * write: the socket is corked by the first and uncorked once the tick's work is done, which is
 * before any I/O, so a lone command waits for nothing. Half the CPU per command of ioredis's
 * enableAutoPipelining, and no garbage of its own.
 */
function writeOncePerTick(client: Redis): void {
  const send = client.sendCommand;
  let corked: Redis['stream'] | undefined;
  const uncork = (): void => {
    corked?.uncork();
    corked = undefined;
  };
  client.sendCommand = function sendCommand(this: Redis, ...args: Parameters<Redis['sendCommand']>) {
    // Only the client's own socket: a pipeline or a transaction writes through another stream.
    if (corked === undefined && args[1] === undefined && client.status === 'ready') {
      corked = client.stream;
      corked.cork();
      setImmediate(uncork);
    }
    return send.apply(this, args);
  };
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
