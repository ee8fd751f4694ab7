import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ErrorEnvelope, TestGateway, startTestGateway } from './support/test-gateway';

/** Raw HTTP, for the edge cases an SDK never sends (chunked bodies, odd headers). */
function raw(url: string, path: string, init: { method?: string; headers?: Record<string, string>; chunks?: Buffer[] }) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = request(`${url}${path}`, { method: init.method ?? 'POST', headers: init.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    for (const chunk of init.chunks ?? []) req.write(chunk);
    req.end();
  });
}

function assertEnvelope(body: string, status: number, code: string, type?: string): ErrorEnvelope {
  const parsed = JSON.parse(body) as ErrorEnvelope;
  assert.equal(typeof parsed.error.message, 'string', body);
  assert.ok(parsed.error.message.length > 0, body);
  assert.equal(parsed.error.code, code, `${status}: ${body}`);
  if (type) assert.equal(parsed.error.type, type);
  assert.ok(parsed.error.param === null || typeof parsed.error.param === 'string');
  return parsed;
}

describe('error envelope', () => {
  let gw: TestGateway;
  let admin: Record<string, string>;

  before(async () => {
    gw = await startTestGateway({ config: { server: { body_limit: '1kb' } } });
    admin = { authorization: `Bearer ${gw.adminToken}` };
  });
  after(() => gw.close());

  it('answers an unknown route or method with 404 not_found', async () => {
    for (const [method, path] of [['GET', '/nope'], ['PUT', '/admin/keys'], ['GET', '/v1/chat/completions']]) {
      const res = await raw(gw.url, path, { method, headers: admin });
      assert.equal(res.status, 404, `${method} ${path}`);
      assertEnvelope(res.body, 404, 'not_found', 'invalid_request_error');
    }
  });

  it('answers malformed, empty, non-object and too-deep JSON with 400 invalid_json', async () => {
    const deep = '{"a":'.repeat(70) + '1' + '}'.repeat(70);
    const bodies = ['{"name":', '', '[1,2]', '"text"', 'null', deep, '{"a":1}garbage'];
    for (const body of bodies) {
      const res = await raw(gw.url, '/admin/keys', { headers: { ...admin, 'content-type': 'application/json' }, chunks: [Buffer.from(body)] });
      assert.equal(res.status, 400, body.slice(0, 20));
      assertEnvelope(res.body, 400, 'invalid_json', 'invalid_request_error');
    }
  });

  it('accepts nesting of exactly 64 levels', async () => {
    const nested = '{"a":'.repeat(63) + '1' + '}'.repeat(63);
    const body = `{"name":"deep","metadata":${nested}}`;
    const res = await raw(gw.url, '/admin/keys', { headers: { ...admin, 'content-type': 'application/json' }, chunks: [Buffer.from(body)] });
    // 64 levels of nesting in the metadata: validates (201) or is refused for size, never invalid_json
    assert.notEqual(JSON.parse(res.body).error?.code, 'invalid_json');
  });

  it('answers a body that is not application/json with 415', async () => {
    const res = await raw(gw.url, '/admin/keys', { headers: { ...admin, 'content-type': 'text/plain' }, chunks: [Buffer.from('{"name":"x"}')] });
    assert.equal(res.status, 415);
    assertEnvelope(res.body, 415, 'unsupported_media_type');
  });

  it('answers a body over body_limit with 413, declared or chunked', async () => {
    const big = Buffer.alloc(2048, 'a');
    const declared = await raw(gw.url, '/admin/keys', {
      headers: { ...admin, 'content-type': 'application/json', 'content-length': String(big.length) },
      chunks: [big],
    });
    assert.equal(declared.status, 413);
    assertEnvelope(declared.body, 413, 'request_too_large');
    const chunked = await raw(gw.url, '/admin/keys', {
      headers: { ...admin, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      chunks: [big.subarray(0, 700), big.subarray(700)],
    });
    assert.equal(chunked.status, 413);
    assertEnvelope(chunked.body, 413, 'request_too_large');
  });

  it('names the offending field of a validation failure in param', async () => {
    const cases: Array<[unknown, string]> = [
      [{ name: 5 }, 'name'],
      [{ name: 'x', rate_limit_per_minute: '10' }, 'rate_limit_per_minute'],
      [{ name: 'x', rate_limit_per_minute: 0 }, 'rate_limit_per_minute'],
      [{ name: 'x', credit_limit: -1 }, 'credit_limit'],
      [{ name: 'x', metadata: [1] }, 'metadata'],
      [{ name: 'x', unknown_field: 1 }, 'unknown_field'],
    ];
    for (const [body, param] of cases) {
      const res = await gw.admin('/admin/keys', { method: 'POST', body });
      assert.equal(res.status, 400, JSON.stringify(body));
      const envelope = assertEnvelope(await res.text(), 400, 'invalid_value', 'invalid_request_error');
      assert.equal(envelope.error.param, param);
    }
  });

  it('answers 400 invalid_value for limit over 500', async () => {
    const res = await gw.admin('/admin/keys?limit=501');
    assert.equal(res.status, 400);
    assert.equal(assertEnvelope(await res.text(), 400, 'invalid_value').error.param, 'limit');
  });

  it('tells a missing key from an invalid one on /v1', async () => {
    const missing = [undefined, 'Bearer', 'Bearer   ', 'Basic abc'];
    for (const authorization of missing) {
      const res = await raw(gw.url, '/v1/models', { method: 'GET', headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 401, String(authorization));
      assertEnvelope(res.body, 401, 'missing_api_key', 'authentication_error');
    }
    const invalid = await raw(gw.url, '/v1/models', { method: 'GET', headers: { authorization: 'Bearer db-nope' } });
    assert.equal(invalid.status, 401);
    assertEnvelope(invalid.body, 401, 'invalid_api_key');
  });

  it('never answers 5xx to odd Unicode, lone surrogates or huge strings', async () => {
    const names = ['\ud800', '\udfff x', '😀'.repeat(25), '\u0000\u202e', 'a'.repeat(900)];
    const metadata = [{ k: '\u0000' }, { '\ud800': '\udc00\ud800' }];
    for (const value of metadata) {
      const res = await gw.admin('/admin/keys', { method: 'POST', body: { name: 'meta', metadata: value } });
      assert.ok(res.status < 500, `${res.status} for metadata ${JSON.stringify(value)}`);
    }
    for (const name of names) {
      const res = await gw.admin('/admin/keys', { method: 'POST', body: { name } });
      assert.ok(res.status < 500, `${res.status} for ${JSON.stringify(name).slice(0, 30)}`);
    }
  });

  it('echoes a safe X-Request-Id and makes one up otherwise, on errors too', async () => {
    const echoed = await raw(gw.url, '/nope', { method: 'GET', headers: { 'x-request-id': 'trace-123' } });
    assert.equal(echoed.headers['x-request-id'], 'trace-123');
    const fresh = await raw(gw.url, '/health/live', { method: 'GET', headers: { 'x-request-id': 'bad id with spaces' } });
    assert.match(String(fresh.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const unauthorized = await raw(gw.url, '/v1/models', { method: 'GET' });
    assert.ok(unauthorized.headers['x-request-id']);
  });
});
