import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Secret } from '../config/secret';
import { UpstreamError } from '../providers/upstream-error';
import { AccountHealth, DEFAULT_HEALTH_POLICY, describeFailure } from './account-health';

const policy = { ...DEFAULT_HEALTH_POLICY, cooldownMs: 30_000 };
const T = 1_000_000;
const serverError = () => new UpstreamError('server', 'upstream answered 502', 502);

describe('AccountHealth', () => {
  it('cools down for the upstream Retry-After after a 429 and is healthy again when it ends', () => {
    const health = new AccountHealth(policy);
    assert.equal(health.recordFailure(new UpstreamError('rate_limited', 'slow down', 429, 2_000), T), true);
    assert.equal(health.state(T), 'cooling');
    assert.equal(health.usableAt(T), T + 2_000);
    assert.equal(health.state(T + 1_999), 'cooling');
    assert.equal(health.state(T + 2_000), 'healthy');
    assert.equal(health.usableAt(T + 2_000), 0);
  });

  it('cools down for pool.cooldown_ms after a 429 without Retry-After', () => {
    const health = new AccountHealth(policy);
    health.recordFailure(new UpstreamError('rate_limited', 'slow down', 429), T);
    assert.equal(health.usableAt(T), T + 30_000);
  });

  it('a shorter 429 does not cut a longer cooldown short', () => {
    const health = new AccountHealth(policy);
    health.recordFailure(new UpstreamError('rate_limited', 'x', 429, 10_000), T);
    assert.equal(health.recordFailure(new UpstreamError('rate_limited', 'x', 429, 1_000), T + 1), false);
    assert.equal(health.usableAt(T + 1), T + 10_000);
  });

  it('is ejected after 3 consecutive server failures, with a backoff that doubles up to 60 s', () => {
    const health = new AccountHealth(policy);
    let now = T;
    assert.equal(health.recordFailure(serverError(), now), false);
    assert.equal(health.recordFailure(serverError(), now), false);
    assert.equal(health.recordFailure(serverError(), now), true);
    assert.equal(health.state(now), 'ejected');
    const backoffs: number[] = [];
    for (let i = 0; i < 9; i++) {
      const until = health.usableAt(now);
      backoffs.push(until - now);
      now = until;
      assert.equal(health.state(now), 'healthy', 'an ejection ends by itself');
      // The probe after the ejection fails again: ejected at once, for longer.
      assert.equal(health.recordFailure(serverError(), now), true);
    }
    assert.deepEqual(backoffs, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]);
  });

  it('failures of requests already in flight do not stretch an ejection', () => {
    const health = new AccountHealth(policy);
    for (let i = 0; i < 3; i++) health.recordFailure(new UpstreamError('connect', 'refused'), T);
    assert.equal(health.recordFailure(new UpstreamError('timeout', 'slow'), T + 10), false);
    assert.equal(health.usableAt(T + 10), T + 1_000);
  });

  it('a success resets consecutive failures and ends an ejection', () => {
    const health = new AccountHealth(policy);
    health.recordFailure(serverError(), T);
    health.recordFailure(serverError(), T);
    health.recordSuccess(T);
    health.recordFailure(serverError(), T);
    health.recordFailure(serverError(), T);
    assert.equal(health.state(T), 'healthy', 'two failures after a success do not eject');
    health.recordFailure(serverError(), T);
    assert.equal(health.state(T), 'ejected');
    assert.equal(health.recordSuccess(T + 1), true);
    assert.equal(health.state(T + 1), 'healthy');
    for (let i = 0; i < 3; i++) health.recordFailure(serverError(), T + 2);
    assert.equal(health.usableAt(T + 2), T + 1_002, 'the backoff starts over after a success');
  });

  it('an auth failure makes it unhealthy until the recheck, whatever succeeds meanwhile', () => {
    const health = new AccountHealth(policy);
    assert.equal(health.recordFailure(new UpstreamError('auth', 'bad key', 401), T), true);
    health.recordSuccess(T + 1);
    assert.equal(health.state(T + 1), 'unhealthy');
    assert.equal(health.state(T + policy.authRecheckMs - 1), 'unhealthy');
    assert.equal(health.state(T + policy.authRecheckMs), 'healthy');
  });

  it('client errors do not count against the account; stream failures count but never eject', () => {
    const health = new AccountHealth(policy);
    for (let i = 0; i < 5; i++) health.recordFailure(new UpstreamError('client', 'bad request', 400), T);
    assert.equal(health.errors, 0);
    assert.equal(health.lastError, null);
    for (let i = 0; i < 5; i++) health.recordFailure(new UpstreamError('stream', 'cut'), T);
    assert.equal(health.errors, 5);
    assert.equal(health.state(T), 'healthy');
    assert.equal(health.lastError, 'stream: cut');
    assert.equal(health.lastFailureAt, T);
  });

  it('remembers the last error as kind and status, redacted and short', () => {
    const key = 'sk-live-0123456789abcdefSECRET';
    const health = new AccountHealth(policy, new Secret(key));
    health.recordFailure(new UpstreamError('auth', `Incorrect API key provided: ${key}. Bearer abc.def`, 401), T);
    assert.match(health.lastError!, /^auth \(HTTP 401\): /);
    assert.ok(!health.lastError!.includes(key));
    assert.ok(!health.lastError!.includes('abc.def'));
    const long = describeFailure(new UpstreamError('server', 'x '.repeat(2_000), 500));
    assert.ok(long.length <= 230, `${long.length} characters`);
    assert.ok(!describeFailure(new UpstreamError('server', `token ${'A1'.repeat(30)}`, 500)).includes('A1A1A1'));
    assert.equal(describeFailure(new UpstreamError('connect', '')), 'connect');
  });

  it('applies restrictions another replica saw, only ever extending them', () => {
    const health = new AccountHealth(policy);
    health.recordFailure(new UpstreamError('rate_limited', 'slow down', 429, 10_000), T);
    assert.deepEqual(health.marks(), { cooldownUntil: T + 10_000, ejectedUntil: 0, unhealthyUntil: 0 });
    assert.equal(health.applyMarks({ cooldownUntil: T + 5_000, ejectedUntil: 0, unhealthyUntil: T - 1 }, T), false);
    assert.equal(health.usableAt(T), T + 10_000);
    assert.equal(health.applyMarks({ cooldownUntil: T + 20_000, ejectedUntil: 0, unhealthyUntil: 0 }, T + 1), true);
    assert.equal(health.usableAt(T + 1), T + 20_000);
    assert.equal(health.applyMarks({ cooldownUntil: 0, ejectedUntil: 0, unhealthyUntil: T + 60_000 }, T + 2), true);
    assert.equal(health.state(T + 2), 'unhealthy');
    assert.equal(health.lastFailureAt, T + 2);
  });
});
