import type { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { buildConfig } from '../../src/config/config.loader';
import type { AppConfig } from '../../src/config/app-config';
import { AppFactory, Gateway, startGateway } from '../../src/gateway';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface TestGatewayOptions {
  /** Merged over a config with model `kiro` on one mock account. */
  config?: Record<string, unknown>;
  /** Extra environment (REDIS_URL, LOG_LEVEL…); DATABASE_URL and the admin token are set. */
  env?: Record<string, string | undefined>;
  /** Builds the app, to swap a provider for a test double (see `withProviders`). */
  appFactory?: AppFactory;
}

/** An app factory with the given providers replaced, everything else as in production. */
export function withProviders(overrides: ReadonlyArray<[token: unknown, value: unknown]>): AppFactory {
  return async (root) => {
    let builder = Test.createTestingModule({ imports: [root] });
    for (const [token, value] of overrides) builder = builder.overrideProvider(token).useValue(value);
    const moduleRef = await builder.compile();
    return moduleRef.createNestApplication<NestExpressApplication>({ bodyParser: false, bufferLogs: true });
  };
}

export interface TestGateway extends Gateway {
  adminToken: string;
  /** fetch against the gateway with the admin token. */
  admin(path: string, init?: { method?: string; body?: unknown }): Promise<Response>;
  /** Creates a key through the admin API and returns its secret and id. */
  createKey(fields?: Record<string, unknown>): Promise<{ id: string; key: string }>;
}

/** Boots the real AppModule on port 0 against the run's Postgres, through startGateway. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const adminToken = `test-admin-${randomBytes(24).toString('hex')}`;
  const raw = {
    models: [{ id: 'kiro', credits: { per_request: 0, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 5 } }],
    accounts: [{ id: 'mock-1', provider: 'mock', max_concurrency: 3 }],
    // Unique per gateway unless a test shares one Redis namespace between two on purpose.
    redis: { key_prefix: `test:${randomBytes(6).toString('hex')}:` },
    ...options.config,
    server: { port: 0, host: '127.0.0.1', ...(options.config?.server as object | undefined) },
  };
  const config: AppConfig = buildConfig(raw, {
    DATABASE_URL: TEST_DATABASE_URL,
    DRAWBRIDGE_ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'warn',
    ...options.env,
  });
  const gateway = await startGateway(config, options.appFactory);
  const admin = (path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> =>
    fetch(`${gateway.url}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${adminToken}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
    });
  return {
    ...gateway,
    adminToken,
    admin,
    async createKey(fields = {}) {
      const res = await admin('/admin/keys', { method: 'POST', body: { name: 'test key', ...fields } });
      if (res.status !== 201) throw new Error(`creating a key failed: ${res.status} ${await res.text()}`);
      const body = (await res.json()) as { id: string; key: string };
      return { id: body.id, key: body.key };
    },
  };
}

/** The OpenAI error envelope every non-2xx answer must carry. */
export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string };
}
