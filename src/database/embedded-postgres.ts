import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * The embedded default (DESIGN §2.3): a PGlite database under the data folder, served on a
 * loopback socket so the app reaches it through the very same `pg` driver and migrations as a
 * real Postgres. One process at a time may own a data folder.
 */
export class EmbeddedPostgres {
  private db?: PGlite;
  private server?: PGLiteSocketServer;

  constructor(private readonly dataDir: string) {}

  /** Starts the database and its socket; resolves to a `postgres://` URL for `pg`. */
  async start(): Promise<string> {
    const dir = join(this.dataDir, 'pgdata');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.db = await PGlite.create(dir);
    this.server = new PGLiteSocketServer({ db: this.db, host: '127.0.0.1', port: 0, maxConnections: 8 });
    await this.server.start();
    return `postgres://postgres@${this.server.getServerConn()}/postgres`;
  }

  async stop(): Promise<void> {
    await this.server?.stop();
    await this.db?.close();
    this.server = undefined;
    this.db = undefined;
  }
}
