import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccountConfig } from '../config/app-config';
import { UpstreamError } from '../providers/upstream-error';
import { AccountHealth, DEFAULT_HEALTH_POLICY } from './account-health';
import { NO_CANDIDATE, PoolAccount, WAIT_FOR_COOLDOWN, WAIT_FOR_SLOT, selectAccount } from './account-selector';
import { MemorySlotLedger } from './slot-ledger';

const T = 1_000_000;

function account(id: string, max: number): PoolAccount {
  return {
    id,
    max,
    config: { id, provider: 'mock', max_concurrency: max } as AccountConfig,
    health: new AccountHealth({ ...DEFAULT_HEALTH_POLICY, cooldownMs: 30_000 }),
  };
}

function hold(ledger: MemorySlotLedger, a: PoolAccount, n: number): void {
  for (let i = 0; i < n; i++) assert.notEqual(ledger.tryAcquire(a.id, a.max), null);
}

function eject(a: PoolAccount, at: number): void {
  for (let i = 0; i < 3; i++) a.health.recordFailure(new UpstreamError('server', 'boom', 500), at);
}

describe('selectAccount', () => {
  it('picks the account with the lowest busy/max ratio', () => {
    const ledger = new MemorySlotLedger();
    const big = account('big', 4);
    const small = account('small', 2);
    hold(ledger, big, 2);
    assert.equal(selectAccount([big, small], ledger, T, undefined, 0), 1, '2/4 is busier than 0/2');
    const other = new MemorySlotLedger();
    hold(other, big, 1);
    hold(other, small, 1);
    assert.equal(selectAccount([big, small], other, T, undefined, 1), 0, '1/4 beats 1/2 even from the cursor');
  });

  it('breaks ties round robin from the cursor', () => {
    const ledger = new MemorySlotLedger();
    const accounts = [account('a', 2), account('b', 2), account('c', 2)];
    assert.equal(selectAccount(accounts, ledger, T, undefined, 0), 0);
    assert.equal(selectAccount(accounts, ledger, T, undefined, 1), 1);
    assert.equal(selectAccount(accounts, ledger, T, undefined, 2), 2);
  });

  it('waits for a slot when every usable account is full', () => {
    const ledger = new MemorySlotLedger();
    const a = account('a', 1);
    hold(ledger, a, 1);
    assert.equal(selectAccount([a], ledger, T, undefined, 0), WAIT_FOR_SLOT);
  });

  it('skips excluded accounts and has no candidate when all are excluded', () => {
    const ledger = new MemorySlotLedger();
    const accounts = [account('a', 1), account('b', 1)];
    assert.equal(selectAccount(accounts, ledger, T, new Set(['a']), 0), 1);
    assert.equal(selectAccount(accounts, ledger, T, new Set(['a', 'b']), 0), NO_CANDIDATE);
  });

  it('waits for a cooldown when every account is cooling down', () => {
    const ledger = new MemorySlotLedger();
    const a = account('a', 1);
    a.health.recordFailure(new UpstreamError('rate_limited', 'slow', 429, 1_000), T);
    assert.equal(selectAccount([a], ledger, T, undefined, 0), WAIT_FOR_COOLDOWN);
    assert.equal(selectAccount([a], ledger, T + 1_000, undefined, 0), 0);
  });

  it('never picks an unhealthy account', () => {
    const ledger = new MemorySlotLedger();
    const a = account('a', 1);
    a.health.recordFailure(new UpstreamError('auth', 'no', 401), T);
    assert.equal(selectAccount([a], ledger, T, undefined, 0), NO_CANDIDATE);
  });

  it('when every account is ejected, tries the one that failed least recently', () => {
    const ledger = new MemorySlotLedger();
    const accounts = [account('a', 1), account('b', 1), account('c', 1)];
    eject(accounts[0], T + 20);
    eject(accounts[1], T + 10);
    eject(accounts[2], T + 30);
    assert.equal(selectAccount(accounts, ledger, T + 40, undefined, 0), 1);
    hold(ledger, accounts[1], 1);
    assert.equal(selectAccount(accounts, ledger, T + 40, undefined, 0), WAIT_FOR_SLOT, 'waits for the fallback account');
  });

  it('the ejected fallback also applies when the rest are unhealthy, but not when one is cooling down', () => {
    const ledger = new MemorySlotLedger();
    const ejected = account('e', 1);
    const other = account('o', 1);
    eject(ejected, T);
    other.health.recordFailure(new UpstreamError('auth', 'no', 403), T);
    assert.equal(selectAccount([ejected, other], ledger, T + 1, undefined, 0), 0);
    const cooling = account('c', 1);
    cooling.health.recordFailure(new UpstreamError('rate_limited', 'slow', 429), T);
    assert.equal(selectAccount([ejected, cooling], ledger, T + 1, undefined, 0), WAIT_FOR_COOLDOWN);
  });
});
