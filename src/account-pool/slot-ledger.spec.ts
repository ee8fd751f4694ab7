import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemorySlotLedger, isPromiseLike } from './slot-ledger';

describe('MemorySlotLedger', () => {
  it('hands out at most max slots per account and takes them back', () => {
    const ledger = new MemorySlotLedger();
    const tokens = [ledger.tryAcquire('a', 2), ledger.tryAcquire('a', 2)];
    assert.ok(tokens.every((t) => t !== null));
    assert.equal(ledger.tryAcquire('a', 2), null);
    assert.equal(ledger.busy('a'), 2);
    assert.equal(ledger.busy('b'), 0, 'accounts are counted separately');
    ledger.release('a');
    assert.equal(ledger.busy('a'), 1);
    assert.notEqual(ledger.tryAcquire('a', 2), null);
  });

  it('never counts below zero, so a stray release cannot mint an extra slot', () => {
    const ledger = new MemorySlotLedger();
    ledger.release('a');
    assert.equal(ledger.busy('a'), 0);
    assert.notEqual(ledger.tryAcquire('a', 1), null);
    assert.equal(ledger.tryAcquire('a', 1), null);
  });

  it('answers synchronously', () => {
    const ledger = new MemorySlotLedger();
    assert.equal(isPromiseLike(ledger.tryAcquire('a', 1)), false);
    assert.equal(isPromiseLike(Promise.resolve(1)), true);
  });
});
