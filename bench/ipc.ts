/*
 * The benchmark's process plumbing. Every target (upstream, floor proxy, gateway) runs in its own
 * process, forked with an IPC channel: the child answers `{id, op, args}` requests with
 * `{id, result}` or `{id, error}` and announces itself once with `{event: 'ready', ...}`. A
 * child exits when its parent goes away, so a crashed or killed orchestrator leaves nothing
 * behind.
 */
import { ChildProcess, fork } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

type Handler = (args: unknown) => unknown;

interface IpcRequest {
  id: number;
  op: string;
  args?: unknown;
}

interface IpcReply {
  id?: number;
  event?: string;
  result?: unknown;
  error?: string;
  [field: string]: unknown;
}

/** Child side: answers the parent's requests; `stop` exits once its handler has run. */
export function serveIpc(handlers: Record<string, Handler>): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: IpcRequest) => {
    const handler = handlers[message.op];
    void (async () => {
      let reply: IpcReply;
      try {
        if (!handler) throw new Error(`unknown op ${message.op}`);
        reply = { id: message.id, result: await handler(message.args) };
      } catch (err) {
        reply = { id: message.id, error: (err as Error).message };
      }
      process.send!(reply, undefined, undefined, () => {
        if (message.op === 'stop') process.exit(0);
      });
    })();
  });
}

export interface ChildOptions {
  /** Node flags of the child (`--cpu-prof`, `--expose-gc`). */
  execArgv?: string[];
  /** stdout and stderr of the child go to `<logDir>/<name>.log`. */
  logDir: string;
  readyTimeoutMs?: number;
}

/** Parent side: one forked target process. */
export class BenchChild {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private exitCode: number | string | undefined;
  readonly exited: Promise<number | string>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    readonly logPath: string,
  ) {
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitCode = code ?? signal ?? -1;
        for (const { reject } of this.pending.values()) reject(new Error(`${name} exited (${this.exitCode}); see ${logPath}`));
        this.pending.clear();
        resolve(this.exitCode);
      });
    });
    child.on('message', (message: IpcReply) => {
      if (message.id === undefined) return;
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error !== undefined) waiter.reject(new Error(`${name}: ${message.error}`));
      else waiter.resolve(message.result);
    });
  }

  /** Forks `script` and waits for its `ready` event, whose fields are returned. */
  static async start(name: string, script: string, args: string[], options: ChildOptions): Promise<{ process: BenchChild; ready: IpcReply }> {
    const logPath = join(options.logDir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    let child: ChildProcess;
    try {
      child = fork(script, args, { execArgv: options.execArgv ?? [], stdio: ['ignore', fd, fd, 'ipc'] });
    } finally {
      closeSync(fd);
    }
    const handle = new BenchChild(name, child, logPath);
    const timeoutMs = options.readyTimeoutMs ?? 60_000;
    const ready = await new Promise<IpcReply>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} not ready within ${timeoutMs} ms; see ${logPath}:\n${handle.logTail()}`)), timeoutMs);
      child.on('message', (message: IpcReply) => {
        if (message.event !== 'ready') return;
        clearTimeout(timer);
        resolve(message);
      });
      void handle.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited (${code}) before it was ready:\n${handle.logTail()}`));
      });
    }).catch((err: unknown) => {
      handle.kill();
      throw err;
    });
    return { process: handle, ready };
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  call<T = unknown>(op: string, args?: unknown, timeoutMs = 15_000): Promise<T> {
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running`));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${op} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ id, op, args } satisfies IpcRequest);
    });
  }

  /** Resident set size from /proc/<pid>/status, MB (MiB). */
  rssMb(): number {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (!match) throw new Error(`no VmRSS for ${this.name}`);
    return Number(match[1]) / 1024;
  }

  /** Open file descriptors (sockets included), from /proc/<pid>/fd. */
  openFds(): number {
    return readdirSync(`/proc/${this.pid}/fd`).length;
  }

  /** Asks the child to stop and waits for it to exit; SIGKILL after `timeoutMs`. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (!this.running) return;
    const killer = setTimeout(() => this.kill(), timeoutMs);
    try {
      await this.call('stop', undefined, timeoutMs).catch(() => undefined);
      await this.exited;
    } finally {
      clearTimeout(killer);
    }
  }

  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.logPath, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}
