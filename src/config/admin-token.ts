import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Secret } from './secret';

export const MIN_ADMIN_TOKEN_LENGTH = 32;

/**
 * The embedded-mode admin token (DESIGN §2.4): read from `<data_dir>/admin-token`, or generated
 * there on first start with mode 0600. Returns the token and the file path (the path, never the
 * token, is what gets logged).
 */
export function loadOrCreateEmbeddedAdminToken(dataDir: string): { token: Secret; path: string; created: boolean } {
  const path = join(dataDir, 'admin-token');
  if (existsSync(path)) {
    const stored = readFileSync(path, 'utf8').trim();
    if (stored.length < MIN_ADMIN_TOKEN_LENGTH) {
      throw new Error(`${path}: the stored admin token is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters; delete the file to generate a new one`);
    }
    return { token: new Secret(stored), path, created: false };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = `dba-${randomBytes(32).toString('base64url')}`;
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'wx' });
  return { token: new Secret(token), path, created: true };
}
