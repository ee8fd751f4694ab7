import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/*
 * Key format: `db-` + 32 base62 characters of randomness (32 × log2 62 ≈ 190.5 bits) + a
 * 6-character base62 CRC-32 of those 32, so a mistyped or made-up key is refused before any
 * lookup. Only the SHA-256 of the whole key is ever stored.
 */

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_CHARS = 32;
const CHECKSUM_CHARS = 6;
export const KEY_PREFIX = 'db-';
export const KEY_LENGTH = KEY_PREFIX.length + RANDOM_CHARS + CHECKSUM_CHARS;
const SHAPE = new RegExp(`^${KEY_PREFIX}[0-9A-Za-z]{${RANDOM_CHARS + CHECKSUM_CHARS}}$`);

export function generateApiKey(): string {
  let body = '';
  while (body.length < RANDOM_CHARS) {
    for (const byte of randomBytes(RANDOM_CHARS)) {
      // 248 = 4 × 62: rejecting the top 8 values keeps every character uniform.
      if (byte < 248 && body.length < RANDOM_CHARS) body += ALPHABET[byte % 62];
    }
  }
  return KEY_PREFIX + body + checksum(body);
}

/** True when the key has the right prefix, length, alphabet and checksum. */
export function isWellFormedApiKey(key: string): boolean {
  if (key.length !== KEY_LENGTH || !SHAPE.test(key)) return false;
  const body = key.slice(KEY_PREFIX.length, KEY_PREFIX.length + RANDOM_CHARS);
  return key.slice(KEY_PREFIX.length + RANDOM_CHARS) === checksum(body);
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** `db-` and the next 8 characters: enough to recognise a key, useless to an attacker. */
export function keyPrefixOf(key: string): string {
  return key.slice(0, KEY_PREFIX.length + 8);
}

function checksum(body: string): string {
  let n = crc32(body);
  let out = '';
  for (let i = 0; i < CHECKSUM_CHARS; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}
