import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { ErrorEnvelope, TEST_DATABASE_URL, TestGateway, startTestGateway } from './support/test-gateway';

describe('API keys', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startTestGateway({ config: { models: [{ id: 'kiro' }, { id: 'other' }] } });
  });
  after(() => gw.close());

  const models = (key: string) => fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });

  it('create → use → patch → revoke → 401 on the next request', async () => {
    const created = await gw.admin('/admin/keys', { method: 'POST', body: { name: 'lifecycle', models: ['kiro'] } });
    assert.equal(created.status, 201);
    const key = (await created.json()) as { id: string; key: string; key_prefix: string; status: string; models: string[] };
    assert.match(key.key, /^db-/);
    assert.equal(key.key_prefix, key.key.slice(0, 11));
    assert.equal(key.status, 'active');

    let res = await models(key.key);
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id), ['kiro']);

    const patched = await gw.admin(`/admin/keys/${key.id}`, { method: 'PATCH', body: { models: null, name: 'renamed' } });
    assert.equal(patched.status, 200);
    assert.equal(((await patched.json()) as { name: string }).name, 'renamed');
    res = await models(key.key);
    assert.deepEqual(((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id), ['kiro', 'other']);

    const revoked = await gw.admin(`/admin/keys/${key.id}`, { method: 'DELETE' });
    assert.equal(revoked.status, 200);
    const revokedBody = (await revoked.json()) as { status: string; revoked_at: string | null };
    assert.equal(revokedBody.status, 'revoked');
    assert.ok(revokedBody.revoked_at);

    res = await models(key.key);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_api_key');
  });

  it('refuses an expired key', async () => {
    const { id, key } = await gw.createKey({ expires_at: new Date(Date.now() + 60_000).toISOString() });
    assert.equal((await models(key)).status, 200);
    await gw.admin(`/admin/keys/${id}`, { method: 'PATCH', body: { expires_at: new Date(Date.now() - 1000).toISOString() } });
    const res = await models(key);
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_api_key');
    const shown = (await (await gw.admin(`/admin/keys/${id}`)).json()) as { status: string };
    assert.equal(shown.status, 'expired');
  });

  it('refuses expires_at in the past at creation', async () => {
    const res = await gw.admin('/admin/keys', { method: 'POST', body: { name: 'x', expires_at: '2001-01-01T00:00:00Z' } });
    assert.equal(res.status, 400);
    const body = (await res.json()) as ErrorEnvelope;
    assert.equal(body.error.code, 'invalid_value');
    assert.equal(body.error.param, 'expires_at');
  });

  it('refuses an empty models list and unknown models', async () => {
    for (const models of [[], ['nope']]) {
      const res = await gw.admin('/admin/keys', { method: 'POST', body: { name: 'x', models } });
      assert.equal(res.status, 400);
      assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_value');
    }
  });

  it('refuses a malformed key before any database query', async () => {
    const { key } = await gw.createKey();
    assert.equal((await models(key)).status, 200); // warm: the valid key is cached now
    const original = pg.Client.prototype.query;
    let queries = 0;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      queries++;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    try {
      const flipped = key.slice(0, 12) + (key[12] === 'A' ? 'B' : 'A') + key.slice(13);
      for (const bad of [flipped, `sk-${key.slice(3)}`, key.slice(0, -2), 'db-short']) {
        const res = await models(bad);
        assert.equal(res.status, 401);
        assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_api_key');
      }
      assert.equal((await models(key)).status, 200); // and a cached valid key costs none either
      assert.equal(queries, 0);
    } finally {
      pg.Client.prototype.query = original;
    }
  });

  it('never shows the secret or its hash after creation', async () => {
    const { id, key } = await gw.createKey({ name: 'secretive' });
    const listed = await (await gw.admin('/admin/keys?limit=500')).text();
    const single = await (await gw.admin(`/admin/keys/${id}`)).text();
    for (const text of [listed, single]) {
      assert.ok(!text.includes(key), 'secret shown');
      assert.ok(!text.includes(key.slice(11)), 'secret body shown');
      assert.ok(!/key_hash|[0-9a-f]{64}/.test(text), 'hash shown');
    }
    assert.ok(listed.includes(id));
  });

  it('pages newest first with a cursor until has_more is false', async () => {
    const tag = `page-${Date.now()}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await gw.createKey({ name: tag, metadata: { i } })).id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await gw.admin(`/admin/keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(res.status, 200);
      const page = (await res.json()) as { data: { id: string; name: string }[]; has_more: boolean; next_cursor: string | null };
      assert.ok(page.data.length <= 2);
      seen.push(...page.data.filter((k) => k.name === tag).map((k) => k.id));
      cursor = page.next_cursor;
      assert.equal(page.has_more, cursor !== null);
      pages++;
    } while (cursor && seen.length < 5 && pages < 1000);
    assert.deepEqual(seen, [...ids].reverse());
  });

  it('filters the list by status', async () => {
    const { id } = await gw.createKey({ name: 'to-revoke' });
    await gw.admin(`/admin/keys/${id}`, { method: 'DELETE' });
    const res = await gw.admin('/admin/keys?status=revoked&limit=500');
    const page = (await res.json()) as { data: { id: string; status: string }[] };
    assert.ok(page.data.some((k) => k.id === id));
    assert.ok(page.data.every((k) => k.status === 'revoked'));
  });

  it('answers 404 not_found for an unknown or non-uuid key id', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid']) {
      for (const method of ['GET', 'PATCH', 'DELETE']) {
        const res = await gw.admin(`/admin/keys/${id}`, { method, body: method === 'PATCH' ? { name: 'x' } : undefined });
        assert.equal(res.status, 404, `${method} ${id}`);
        assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'not_found');
      }
    }
  });

  it('keeps last_used_at without a write per request', async () => {
    const { id, key } = await gw.createKey();
    assert.equal((await models(key)).status, 200);
    const before = (await (await gw.admin(`/admin/keys/${id}`)).json()) as { last_used_at: string | null };
    assert.equal(before.last_used_at, null, 'written on the request path');
  });
});

describe('admin authentication', () => {
  let gw: TestGateway;
  before(async () => {
    gw = await startTestGateway();
  });
  after(() => gw.close());

  it('answers 401 invalid_admin_token for no token, a wrong token and a db- key', async () => {
    const { key } = await gw.createKey();
    const cases: Record<string, string | undefined> = {
      none: undefined,
      empty: 'Bearer ',
      wrong: `Bearer ${gw.adminToken}x`,
      prefix: `Bearer ${gw.adminToken.slice(0, -1)}`,
      dbKey: `Bearer ${key}`,
    };
    for (const [name, authorization] of Object.entries(cases)) {
      const res = await fetch(`${gw.url}/admin/keys`, { headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, name);
      const body = (await res.json()) as ErrorEnvelope;
      assert.equal(body.error.code, 'invalid_admin_token', name);
      assert.equal(body.error.type, 'authentication_error', name);
    }
  });

  it('refuses the admin token on /v1 routes', async () => {
    const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${gw.adminToken}` } });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_api_key');
  });
});

describe('last_used_at', () => {
  it('is written in a batch, at the latest when the gateway stops', async () => {
    const gw = await startTestGateway();
    let id: string;
    const before = Date.now();
    try {
      const created = await gw.createKey();
      id = created.id;
      const res = await fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${created.key}` } });
      assert.equal(res.status, 200);
    } finally {
      await gw.close();
    }
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ last_used_at: Date | null }>('SELECT last_used_at FROM api_keys WHERE id = $1', [id]);
      assert.ok(rows[0]?.last_used_at, 'last_used_at was never written');
      assert.ok(rows[0].last_used_at.getTime() >= before - 1000);
    } finally {
      await client.end();
    }
  });
});
