import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RateLimitDecision, RateLimitStore } from './rate-limit-store';

/*
 * KEYS[1] the bucket's sorted set (member: one admitted request, score: its Redis TIME in ms).
 * ARGV: limit, windowMs, member. Returns {allowed 0|1, count after, resetAtMs, nowMs}.
 * An entry leaves the window when now >= score + window, so resetAtMs is exactly the first ms at
 * which that entry no longer counts. A refusal writes nothing. When the limit was lowered below
 * the count, the refusal's reset is when enough entries have left to admit one more, so a
 * Retry-After built from it stays honest.
 */
const SLIDING_WINDOW_LUA = `
if redis.replicate_commands then redis.replicate_commands() end
local key = KEYS[1]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
if count < limit then
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
  if count == 0 then return {1, 1, now + window, now} end
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return {1, count + 1, tonumber(oldest[2]) + window, now}
end
if count == 0 then return {0, 0, now + window, now} end
local index = count - limit
if index >= count then index = count - 1 end
local entry = redis.call('ZRANGE', key, index, index, 'WITHSCORES')
return {0, count, tonumber(entry[2]) + window, now}
`;

const COMMAND = 'drawbridgeSlidingWindow';

type WindowReply = [allowed: number, count: number, resetAtMs: number, nowMs: number];

interface WindowCommand {
  [COMMAND](key: string, limit: number, windowMs: number, member: string): Promise<WindowReply>;
}

/**
 * The exact sliding window in Redis, shared by every replica: one EVALSHA per hit, scored by
 * Redis's clock so replica clock skew changes nothing. ioredis errors propagate to the caller.
 */
export class RedisWindowStore implements RateLimitStore {
  private readonly redis: Redis & WindowCommand;
  /** Members must be unique across replicas: a random per-store prefix plus a local counter. */
  private readonly memberPrefix = `${randomBytes(12).toString('base64url')}:`;
  private sequence = 0;

  constructor(
    redis: Redis,
    private readonly keyPrefix: string,
  ) {
    redis.defineCommand(COMMAND, { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
    this.redis = redis as Redis & WindowCommand;
  }

  async hit(bucket: string, limit: number, windowMs: number): Promise<RateLimitDecision> {
    const member = this.memberPrefix + (this.sequence++).toString(36);
    const [allowed, count, resetAtMs, nowMs] = await this.redis[COMMAND](this.keyPrefix + bucket, limit, windowMs, member);
    return allowed === 1
      ? { allowed: true, limit, remaining: limit - count, resetAtMs, nowMs }
      : { allowed: false, limit, remaining: 0, resetAtMs, nowMs };
  }
}
