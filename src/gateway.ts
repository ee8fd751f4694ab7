import { DynamicModule, INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from 'nestjs-pino';
import { AppModule } from './app.module';
import { setUpOpenApi } from './common/openapi';
import { ensureRequestId } from './common/request-id';
import { loadOrCreateEmbeddedAdminToken } from './config/admin-token';
import type { AppConfig } from './config/app-config';
import { EmbeddedPostgres } from './database/embedded-postgres';
import { runMigrations } from './database/migrate';
import { DrainState } from './health/drain-state';

export interface Gateway {
  app: INestApplication;
  config: AppConfig;
  /** `http://host:port` the server listens on. */
  url: string;
  /** Closes the app at once, then the embedded database if one was started. */
  close(): Promise<void>;
  /**
   * The graceful shutdown of DESIGN §3.3: drain (health 503, new completions refused), let
   * in-flight work finish for up to `server.drain_timeout_ms`, cut what is left short, then close
   * (usage flushed, Redis and the database closed).
   */
  shutdown(): Promise<void>;
}

/**
 * Everything between a validated config and a listening server: the admin token, the database
 * (embedded when no DATABASE_URL), migrations, the Nest app. `npm start` and the e2e tests both
 * come through here, so the tests exercise exactly what production runs.
 */
/** Builds the Nest app from the root module; the benchmark swaps in one with parts switched off. */
export type AppFactory = (root: DynamicModule) => Promise<NestExpressApplication>;

const createApp: AppFactory = (root) => NestFactory.create<NestExpressApplication>(root, { bodyParser: false, bufferLogs: true });

export async function startGateway(config: AppConfig, appFactory: AppFactory = createApp): Promise<Gateway> {
  const notes: string[] = [];
  let embedded: EmbeddedPostgres | undefined;
  if (!config.admin_token) {
    const { token, path, created } = loadOrCreateEmbeddedAdminToken(config.data_dir);
    config.admin_token = token;
    notes.push(created ? `generated an admin token in ${path} (mode 0600)` : `admin token read from ${path}`);
  }
  let databaseUrl = config.database_url?.reveal();
  if (!databaseUrl) {
    embedded = new EmbeddedPostgres(config.data_dir);
    databaseUrl = await embedded.start();
    notes.push(`embedded Postgres (PGlite) in ${config.data_dir}; set DATABASE_URL for a real server`);
  }
  try {
    await runMigrations(databaseUrl);
    const app = await appFactory(AppModule.forRoot({ config, databaseUrl, databasePoolSize: embedded ? 1 : 10 }));
    const logger = app.get(Logger);
    app.useLogger(logger);
    app.disable('x-powered-by');
    app.set('etag', false);
    // Before any route, so every answer carries X-Request-Id, unknown routes included.
    app.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
      ensureRequestId(req, res);
      next();
    });
    setUpOpenApi(app);
    await app.listen(config.server.port, config.server.host);
    const address = app.getHttpServer().address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    if (config.source === 'built-in demo') {
      logger.warn('NO CONFIG FILE: serving the built-in demo config (model "kiro" from a mock account with 3 slots). Create drawbridge.yaml or set DRAWBRIDGE_CONFIG for real upstreams.', 'Gateway');
    }
    for (const note of notes) logger.log(note, 'Gateway');
    logger.log(`listening on ${host}:${address.port} (config: ${config.source})`, 'Gateway');
    const close = async (): Promise<void> => {
      await app.close();
      await embedded?.stop();
    };
    return {
      app,
      config,
      url: `http://${host === '[::]' || host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`,
      close,
      shutdown: async () => {
        const drain = app.get(DrainState);
        drain.start();
        logger.log(`draining: ${drain.inFlightCount} request(s) in flight, waiting up to ${config.server.drain_timeout_ms} ms`, 'Gateway');
        if (!(await drain.waitIdle(config.server.drain_timeout_ms))) {
          logger.warn(`drain timeout: cutting ${drain.inFlightCount} request(s) short`, 'Gateway');
          await drain.abortAll();
        }
        app.getHttpServer().closeIdleConnections();
        await close();
      },
    };
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
}
