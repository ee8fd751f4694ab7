import { ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';

export const MAIN = resolve(__dirname, '../../src/main.js');

export interface SpawnedGateway {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

/** Runs `node dist/src/main.js` as `npm start` would (minus the build), and waits until it listens. */
export async function spawnGateway(env: Record<string, string | undefined>, timeoutMs = 30_000): Promise<SpawnedGateway> {
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((done) => child.on('exit', (code, signal) => done(code ?? signal ?? -1)));
  const url = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => {
      // Never leave a half-started gateway behind (it would keep its ports and Redis keys busy).
      child.kill('SIGKILL');
      fail(new Error(`gateway did not start (it logs "listening on" at LOG_LEVEL info or below):\n${out}\n${err}`));
    }, timeoutMs);
    const check = (): void => {
      const match = /listening on ([\d.]+):(\d+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        done(`http://${match[1]}:${match[2]}`);
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`gateway exited with ${code}:\n${out}\n${err}`));
    });
  });
  return { child, url, stdout: () => out, stderr: () => err, exited };
}

/** Runs main.js expecting it to fail at start-up; resolves with its exit code and output. */
export function runToExit(env: Record<string, string | undefined>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, PORT: '0', HOST: '127.0.0.1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`did not exit:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
