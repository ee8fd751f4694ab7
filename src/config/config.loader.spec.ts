import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, buildConfig, expandEnv } from './config.loader';

const minimal = { models: [{ id: 'kiro' }], accounts: [{ id: 'a', provider: 'mock', max_concurrency: 2 }] };

describe('config loader', () => {
  it('expands ${VAR} and ${VAR:-default} inside strings only', () => {
    const env = { HOST_A: 'up.example', PORT_A: '9000', EMPTY: '' };
    assert.deepEqual(
      expandEnv({ url: 'https://${HOST_A}/v1', port: '${PORT_A}', fallback: '${NOPE:-x}', empty: '${EMPTY:-d}', gone: '${NOPE}', list: ['${HOST_A}'] }, env),
      { url: 'https://up.example/v1', port: 9000, fallback: 'x', empty: 'd', list: ['up.example'] },
    );
  });

  it('fills defaults and lets the environment win over the file', () => {
    const config = buildConfig({ ...minimal, server: { port: 1234 } }, { PORT: '4321', DRAWBRIDGE_ADMIN_TOKEN: 'x'.repeat(40) });
    assert.equal(config.server.port, 4321);
    assert.equal(config.server.body_limit_bytes, 10 * 1024 * 1024);
    assert.equal(config.pool.queue_timeout_ms, 30000);
    assert.equal(config.rate_limit.default_per_minute, 60);
    assert.equal(config.accounts[0].timeouts.first_byte_ms, 60000);
    assert.equal(config.admin_token?.reveal(), 'x'.repeat(40));
  });

  it('never prints secrets: they serialize as [redacted]', () => {
    const config = buildConfig(
      { ...minimal, accounts: [{ id: 'o', provider: 'openai', base_url: 'http://u/v1', api_key: 'sk-very-secret', max_concurrency: 1 }] },
      { DRAWBRIDGE_ADMIN_TOKEN: 'admin-token-that-is-long-enough-000' },
    );
    const text = JSON.stringify(config);
    assert.ok(!text.includes('sk-very-secret'));
    assert.ok(!text.includes('admin-token-that'));
    assert.equal(config.accounts[0].api_key?.reveal(), 'sk-very-secret');
  });

  it('collects every problem with its path', () => {
    try {
      buildConfig({ models: [{}], accounts: [{ id: 'a', provider: 'nope', max_concurrency: -1 }], pool: { retries: 'x' } }, { LOG_LEVEL: 'loud' });
      assert.fail('expected a ConfigError');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual([...err.problems].sort(), [
        'LOG_LEVEL: must be one of: fatal, error, warn, info, debug, trace, silent',
        'accounts[0].max_concurrency: must be a positive integer',
        'accounts[0].provider: must be one of: openai, anthropic, mock',
        'models[0].id: is required',
        'pool.retries: must be an integer',
      ]);
    }
  });
});
