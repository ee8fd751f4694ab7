import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runToExit, spawnGateway } from './support/spawn-gateway';
import { TEST_DATABASE_URL } from './support/test-gateway';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-test-'));
  dirs.push(dir);
  return dir;
}
after(() => dirs.forEach((dir) => rmSync(dir, { recursive: true, force: true })));

describe('start-up configuration', () => {
  it('prints every config problem with its path and exits 1', async () => {
    const dir = tempDir();
    const file = join(dir, 'drawbridge.yaml');
    writeFileSync(
      file,
      [
        'rate_limit: { on_store_error: sideways }',
        'models:',
        '  - owned_by: me',
        'accounts:',
        '  - { id: a, provider: mock, max_concurrency: 1 }',
        '  - { id: b, provider: mock, max_concurrency: 0 }',
        '  - { id: c, provider: openai, max_concurrency: "3", base_url: "${UPSTREAM_URL:-https://up.example/v1}", api_key: "${MISSING_KEY}", maxconcurrency: 2 }',
      ].join('\n'),
    );
    const { code, stderr } = await runToExit({ DRAWBRIDGE_CONFIG: file, DRAWBRIDGE_DATA_DIR: dir });
    assert.equal(code, 1);
    const lines = stderr.trim().split('\n');
    for (const expected of [
      'rate_limit.on_store_error: must be one of: open, closed',
      'models[0].id: is required',
      'accounts[1].max_concurrency: must be a positive integer',
      'accounts[2].max_concurrency: must be a positive integer',
      'accounts[2].maxconcurrency: is not a known setting',
    ]) {
      assert.ok(lines.includes(expected), `missing "${expected}" in:\n${stderr}`);
    }
  });

  it('reports cross-field problems such as an unknown model and a missing api_key', async () => {
    const dir = tempDir();
    const file = join(dir, 'drawbridge.yaml');
    writeFileSync(file, 'models: [{ id: kiro }]\naccounts: [{ id: a, provider: openai, base_url: "http://x/v1", max_concurrency: 1, models: [nope] }]\n');
    const { code, stderr } = await runToExit({ DRAWBRIDGE_CONFIG: file, DRAWBRIDGE_DATA_DIR: dir });
    assert.equal(code, 1);
    assert.match(stderr, /^accounts\[0\]\.api_key: is required for provider openai$/m);
    assert.match(stderr, /^accounts\[0\]\.models\[0\]: unknown model 'nope'$/m);
  });

  it('refuses a real database without an admin token, and a token under 32 characters', async () => {
    const dir = tempDir();
    const noToken = await runToExit({ DATABASE_URL: TEST_DATABASE_URL, DRAWBRIDGE_DATA_DIR: dir });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /admin\.auth_token: is required with DATABASE_URL/);
    const short = await runToExit({ DRAWBRIDGE_ADMIN_TOKEN: 'too-short', DRAWBRIDGE_DATA_DIR: dir });
    assert.equal(short.code, 1);
    assert.match(short.stderr, /admin\.auth_token: must be at least 32 characters/);
    assert.ok(!short.stderr.includes('too-short'), 'the token itself was printed');
  });
});

describe('embedded default', () => {
  it('starts from an empty data folder, keeps a key across a restart', async () => {
    const dir = tempDir();
    const env = { DRAWBRIDGE_DATA_DIR: dir, DRAWBRIDGE_CONFIG: undefined, LOG_LEVEL: 'info' };
    const first = await spawnGateway(env, 60_000);
    let key: string;
    try {
      const tokenFile = join(dir, 'admin-token');
      assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
      const token = readFileSync(tokenFile, 'utf8').trim();
      assert.ok(token.length >= 32);
      assert.ok(first.stdout().includes(tokenFile), 'the token path is logged');
      assert.ok(!first.stdout().includes(token), 'the token itself is logged');
      assert.match(first.stdout(), /built-in demo config/);
      const created = await fetch(`${first.url}/admin/keys`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'survivor' }),
      });
      assert.equal(created.status, 201);
      key = ((await created.json()) as { key: string }).key;
      assert.ok(!first.stdout().includes(key), 'the key is logged');
    } finally {
      first.child.kill('SIGTERM');
      assert.equal(await first.exited, 0);
    }
    const second = await spawnGateway(env, 60_000);
    try {
      const models = await fetch(`${second.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(models.status, 200);
      const body = (await models.json()) as { data: { id: string }[] };
      assert.deepEqual(body.data.map((m) => m.id), ['kiro']);
    } finally {
      second.child.kill('SIGTERM');
      assert.equal(await second.exited, 0);
    }
  });
});
