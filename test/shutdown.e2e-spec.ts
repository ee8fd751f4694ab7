import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import type { FakeUpstream, UpstreamSettings } from './support/fake-upstream';
import { startOpenAIUpstream } from './support/openai-upstream';
import { SpawnedGateway, spawnGateway } from './support/spawn-gateway';
import { ErrorEnvelope, TEST_DATABASE_URL } from './support/test-gateway';
import { readUsageRows } from './support/usage-rows';

const HELLO = [{ role: 'user', content: 'Say hello before the drain' }];
const UPSTREAM_KEY = `sk-shutdown-upstream-${randomBytes(12).toString('hex')}`;

const cleanups: Array<() => unknown> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface Running {
  gw: SpawnedGateway;
  up: FakeUpstream;
  adminToken: string;
  key: { id: string; key: string };
}

/** A spawned gateway (real `main.js`, real signals) in front of one fake upstream, and a fresh key. */
async function start(upstream: UpstreamSettings, server: Record<string, unknown> = {}): Promise<Running> {
  const up = await startOpenAIUpstream({ apiKey: UPSTREAM_KEY, ...upstream });
  cleanups.push(() => up.close());
  const dir = mkdtempSync(join(tmpdir(), 'drawbridge-shutdown-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'drawbridge.yaml');
  writeFileSync(
    config,
    stringify({
      server,
      models: [{ id: 'kiro' }],
      accounts: [{ id: 'drain-up', provider: 'openai', base_url: up.url, api_key: UPSTREAM_KEY, max_concurrency: 25 }],
    }),
  );
  const adminToken = `shutdown-admin-${randomBytes(24).toString('hex')}`;
  const gw = await spawnGateway({ DATABASE_URL: TEST_DATABASE_URL, DRAWBRIDGE_ADMIN_TOKEN: adminToken, DRAWBRIDGE_CONFIG: config, DRAWBRIDGE_DATA_DIR: dir });
  cleanups.push(() => {
    if (gw.child.exitCode === null && gw.child.signalCode === null) gw.child.kill('SIGKILL');
  });
  const created = await fetch(`${gw.url}/admin/keys`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'drain', rate_limit_per_minute: 10_000 }),
  });
  assert.equal(created.status, 201);
  const key = (await created.json()) as { id: string; key: string };
  return { gw, up, adminToken, key };
}

function stream(run: Running): Promise<Response> {
  return fetch(`${run.gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${run.key.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'kiro', messages: HELLO, stream: true }),
  });
}

/** Polls /health right after the signal until it says 503; the drain must be visible at once. */
async function waitForDraining(run: Running, timeoutMs = 1000): Promise<{ status: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${run.gw.url}/health`);
    const body = (await res.json()) as { status: string };
    if (res.status === 503 || Date.now() >= deadline) {
      assert.equal(res.status, 503, `/health still answers ${res.status} ${JSON.stringify(body)} after the signal`);
      return body;
    }
    await sleep(10);
  }
}

/** Resolves with the exit code, or fails when the process is still running after `timeoutMs`. */
async function exitCode(gw: SpawnedGateway, timeoutMs: number): Promise<number | string> {
  const timer = sleep(timeoutMs, 'still running' as const);
  const code = await Promise.race([gw.exited, timer]);
  assert.notEqual(code, 'still running', `the process did not exit within ${timeoutMs} ms:\n${gw.stderr()}`);
  return code;
}

function assertNoSecrets(run: Running): void {
  const output = run.gw.stdout() + run.gw.stderr();
  for (const secret of [run.key.key, run.adminToken, UPSTREAM_KEY]) assert.ok(!output.includes(secret), 'a secret reached the logs');
}

describe('graceful shutdown (spawned main.js)', () => {
  it('SIGTERM during 20 slow streams: 503 draining at once, every stream finishes, usage flushed, exit 0', async () => {
    // Ten chunks 150 ms apart: each stream lasts about 1.4 s.
    const run = await start({ text: 'one two three four five six seven eight nine ten', chunkDelayMs: 150 });
    const streams = await Promise.all(Array.from({ length: 20 }, () => stream(run)));
    for (const res of streams) assert.equal(res.status, 200);
    const bodies = streams.map((res) => res.text());

    run.gw.child.kill('SIGTERM');
    const health = await waitForDraining(run);
    assert.equal(health.status, 'draining');
    // Repeated SIGTERMs do not shorten the drain.
    run.gw.child.kill('SIGTERM');

    const ready = await fetch(`${run.gw.url}/health/ready`);
    assert.equal(ready.status, 503);
    await ready.body?.cancel();

    const refused = await stream(run);
    assert.equal(refused.status, 503);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${refused.headers.get('retry-after')}`);
    const envelope = (await refused.json()) as ErrorEnvelope;
    assert.equal(envelope.error.code, 'draining');
    assert.equal(envelope.error.type, 'service_unavailable');

    for (const text of await Promise.all(bodies)) {
      assert.ok(text.endsWith('data: [DONE]\n\n'), `a stream did not finish: ${text.slice(-200)}`);
      assert.ok(!text.includes('"error"'));
    }
    assert.equal(await exitCode(run.gw, 10_000), 0);

    // Read only after the exit: the shutdown itself must have flushed them.
    const rows = await readUsageRows(run.key.id);
    assert.equal(rows.length, 20);
    for (const row of rows) {
      assert.equal(row.status, 'success');
      assert.equal(row.stream, true);
      assert.equal(row.account_id, 'drain-up');
    }
    assertNoSecrets(run);
  });

  it('a stream still open at the drain timeout ends with the SSE error event and is recorded as cancelled', async () => {
    // Ten chunks 550 ms apart: about 5 s, far beyond the 500 ms drain timeout.
    const run = await start({ text: 'one two three four five six seven eight nine ten', chunkDelayMs: 550 }, { drain_timeout_ms: 500 });
    const res = await stream(run);
    assert.equal(res.status, 200);
    const body = res.text();
    await run.up.waitForRequests(1);

    run.gw.child.kill('SIGTERM');
    const text = await body;
    const events = text.split('\n\n').filter((e) => e.length > 0);
    assert.ok(!events.includes('data: [DONE]'), 'a stream cut short by the drain ended with [DONE]');
    const last = events.at(-1)!;
    assert.match(last, /^data: /);
    const error = (JSON.parse(last.slice('data: '.length)) as ErrorEnvelope).error;
    assert.equal(error.code, 'draining');
    assert.equal(error.type, 'service_unavailable');
    assert.ok(error.message.length > 0);
    assert.ok(events.length >= 2, 'the stream had not started before the signal');

    assert.equal(await exitCode(run.gw, 10_000), 0);
    const rows = await readUsageRows(run.key.id);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.status, 'cancelled');
    assert.equal(rows[0]!.error_code, 'draining');
    assertNoSecrets(run);
  });

  it('a second SIGINT exits 130 at once while a stream holds the drain open', async () => {
    const run = await start({ hangAfterChunks: 1 });
    const res = await stream(run);
    assert.equal(res.status, 200);
    const body = res.text().catch(() => '');

    run.gw.child.kill('SIGINT');
    assert.equal((await waitForDraining(run)).status, 'draining');
    run.gw.child.kill('SIGINT');
    // The drain would last 30 s (the default drain_timeout_ms); the second Ctrl-C must not wait.
    assert.equal(await exitCode(run.gw, 5000), 130);
    await body;
  });
});
