import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KEY_LENGTH, generateApiKey, hashApiKey, isWellFormedApiKey, keyPrefixOf } from './key-format';

describe('key format', () => {
  it('generates db- keys of the fixed length that pass their own checksum', () => {
    for (let i = 0; i < 200; i++) {
      const key = generateApiKey();
      assert.equal(key.length, KEY_LENGTH);
      assert.match(key, /^db-[0-9A-Za-z]+$/);
      assert.ok(isWellFormedApiKey(key), key);
    }
  });

  it('never repeats a key', () => {
    const keys = new Set(Array.from({ length: 1000 }, generateApiKey));
    assert.equal(keys.size, 1000);
  });

  it('refuses a key with one character changed, a wrong prefix or a wrong length', () => {
    const key = generateApiKey();
    const flipped = key.slice(0, 10) + (key[10] === 'a' ? 'b' : 'a') + key.slice(11);
    assert.equal(isWellFormedApiKey(flipped), false);
    assert.equal(isWellFormedApiKey(`sk-${key.slice(3)}`), false);
    assert.equal(isWellFormedApiKey(key.slice(0, -1)), false);
    assert.equal(isWellFormedApiKey(`${key}x`), false);
    assert.equal(isWellFormedApiKey(''), false);
  });

  it('hashes to SHA-256 hex and shows only db- plus 8 characters as the prefix', () => {
    const key = generateApiKey();
    assert.match(hashApiKey(key), /^[0-9a-f]{64}$/);
    assert.equal(keyPrefixOf(key), key.slice(0, 11));
    assert.equal(keyPrefixOf(key).length, 11);
  });
});
