/*
 * What the benchmark's drivers share: the targets and their load (autocannon), statistics,
 * process and host readings, and the Run that owns a bench database, Redis prefix and child
 * processes. bench.ts is the full DESIGN §7 run; probe.ts a quick throughput check while working
 * on the hot path.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { Client } from 'pg';
import { runMigrations } from '../src/database/migrate';
import type { GatewaySpec, GatewayVariant } from './gateway-server';
import { BenchChild } from './ipc';
import type { SseTarget } from './sse-client';

/** The one account's slots (also its undici connections) and queue in every G. */
const GATEWAY_SLOTS = 6000;
const GATEWAY_MAX_QUEUE = 10_000;

export const PG_ADMIN_URL = process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const MODEL = 'bench';
/** 64 words: the fake upstream streams one per chunk (it cannot split a reply finer than its code points). */
export const REPLY_TEXT = Array.from({ length: 64 }, (_, i) => `word${i}`).join(' ');
export const PROMPT = [{ role: 'user', content: 'Say hello to the benchmark, please.' }];
export const JSON_BODY = JSON.stringify({ model: MODEL, messages: PROMPT });
export const STREAM_BODY = JSON.stringify({ model: MODEL, messages: PROMPT, stream: true });

// ---- autocannon (no published types: the little used here, typed by hand) ----

interface CannonOptions {
  url: string;
  connections: number;
  pipelining: number;
  duration: number;
  method: 'POST';
  headers: Record<string, string>;
  body: string;
  timeout: number;
}

interface CannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

type Autocannon = (options: CannonOptions, done: (err: Error | null, result: CannonResult) => void) => EventEmitter;
const autocannon = createRequire(__filename)('autocannon') as Autocannon;

// ---- targets ----

export type TargetName = 'B0' | 'B1' | 'G' | 'G-off' | 'G-usage-off' | 'G-factory';

export interface Target {
  name: TargetName;
  /** Chat completions URL. */
  url: string;
  headers: Record<string, string>;
  process: BenchChild;
}

export const started = Date.now();

export function log(message: string): void {
  const s = Math.round((Date.now() - started) / 1000);
  console.log(`[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${message}`);
}

export interface LoadResult {
  ok: number;
  rps: number;
  errors: number;
  non2xx: number;
  /** Latency of every 2xx answer, ms, full float precision (autocannon's own histogram keeps whole ms only). */
  latencies: number[];
}

export function load(target: Target, connections: number, seconds: number, keepLatencies: boolean, body = JSON_BODY): Promise<LoadResult> {
  const latencies: number[] = [];
  return new Promise((resolvePromise, reject) => {
    const instance = autocannon(
      {
        url: target.url,
        connections,
        pipelining: 1,
        duration: seconds,
        method: 'POST',
        headers: { ...target.headers, 'content-type': 'application/json' },
        body,
        timeout: 30,
      },
      (err, result) => {
        if (err) return reject(err);
        const ok = result['2xx'];
        resolvePromise({ ok, rps: ok / result.duration, errors: result.errors + result.timeouts, non2xx: result.non2xx, latencies });
      },
    );
    if (keepLatencies) {
      instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) latencies.push(ms);
      });
    }
  });
}

// ---- statistics ----

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

export const median = (values: readonly number[]): number => quantile(values, 0.5);

/** Round r visits the targets starting at r: no target is always first after a pause. */
export function rotated<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

// ---- process and host helpers ----

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** user + system CPU time of a process so far, ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/** Read and write syscalls a process has made so far (`syscr` / `syscw` of /proc/<pid>/io). */
export function syscalls(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
  return { reads: field('syscr'), writes: field('syscw') };
}

/** The commit measured, and the files changed on top of it outside bench/ (the report says so). */
export function gitState(root: string): { commit: string; changedFiles: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const changedFiles = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .split('\n')
      .map((line) => line.slice(3).trim())
      .filter((path) => path && !path.startsWith('bench/'));
    return { commit, changedFiles };
  } catch {
    return { commit: 'unknown', changedFiles: [] };
  }
}

export function openFileLimit(): string {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
  return match ? `${match[1]} soft / ${match[2]} hard` : 'unknown';
}

export async function withPg<T>(work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: PG_ADMIN_URL });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export async function scrape(url: string): Promise<string> {
  const res = await fetch(url);
  return res.text();
}

export function metricValue(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

// ---- the run ----

export class Run {
  readonly id = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  readonly database = `drawbridge_bench_${this.id}`;
  readonly databaseUrl = PG_ADMIN_URL.replace(/\/[^/]*$/, `/${this.database}`);
  readonly redisPrefix = `bench:${this.id}:`;
  readonly logDir = mkdtempSync(join(os.tmpdir(), 'drawbridge-bench-'));
  private readonly children = new Set<BenchChild>();
  private databaseCreated = false;
  private cleaned = false;

  async createDatabase(): Promise<void> {
    await withPg((c) => c.query(`CREATE DATABASE ${this.database}`));
    this.databaseCreated = true;
    await runMigrations(this.databaseUrl);
  }

  async spawn(name: string, script: string, args: string[], execArgv: string[] = []): Promise<{ child: BenchChild; ready: Record<string, unknown> }> {
    const { process: child, ready } = await BenchChild.start(name, join(__dirname, script), args, { logDir: this.logDir, execArgv });
    this.children.add(child);
    return { child, ready };
  }

  async startGateway(name: string, variant: GatewayVariant, upstreamUrl: string, execArgv: string[] = []): Promise<{ child: BenchChild; url: string; key: string }> {
    const spec: GatewaySpec = {
      variant,
      upstreamUrl,
      databaseUrl: this.databaseUrl,
      redisUrl: REDIS_URL,
      redisKeyPrefix: `${this.redisPrefix}${name}:`,
      slots: GATEWAY_SLOTS,
      maxQueue: GATEWAY_MAX_QUEUE,
      logLevel: 'info',
    };
    const { child, ready } = await this.spawn(name, 'gateway-server.js', [JSON.stringify(spec)], execArgv);
    return { child, url: ready.url as string, key: ready.key as string };
  }

  async stop(child: BenchChild): Promise<void> {
    await child.stop();
    this.children.delete(child);
  }

  /** Every child stopped (killed if it will not stop), the database dropped, Redis keys deleted. */
  async cleanup(hard: boolean): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    const children = [...this.children];
    if (hard) for (const child of children) child.kill();
    await Promise.all(children.map((child) => child.stop(5000)));
    if (this.databaseCreated) {
      await withPg((c) => c.query(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`)).catch((err: unknown) =>
        console.error(`could not drop ${this.database}: ${(err as Error).message}`),
      );
    }
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.redisPrefix}*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    } catch (err) {
      console.error(`could not clean Redis keys ${this.redisPrefix}*: ${(err as Error).message}`);
    } finally {
      redis.disconnect();
    }
  }
}

export async function smokeTest(target: Target): Promise<void> {
  const res = await fetch(target.url, { method: 'POST', headers: { ...target.headers, 'content-type': 'application/json' }, body: JSON_BODY });
  const text = await res.text();
  if (res.status !== 200 || !text.includes('"chat.completion"')) throw new Error(`${target.name} answered HTTP ${res.status}: ${text.slice(0, 300)}`);
}

export function streamTarget(target: Target): SseTarget {
  return { url: target.url, headers: target.headers, body: STREAM_BODY };
}

/**
 * Round trips to Redis from a Node client, one script call at a time: back to back, and after
 * 20 ms of idleness (the way a stream, or a request on a quiet gateway, finds Redis). p50 and
 * p90 in µs. Evidence for the part of G's latency that is waiting on Redis rather than working.
 */
export async function redisRoundTrips(): Promise<{ busyP50Us: number; busyP90Us: number; idleP50Us: number; idleP90Us: number }> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const time = async (gapMs: number, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      if (gapMs > 0) await sleep(gapMs);
      const start = performance.now();
      await redis.eval("return redis.call('TIME')", 0);
      out.push((performance.now() - start) * 1000);
    }
    return out;
  };
  try {
    await time(0, 100); // connect and warm up
    const busy = await time(0, 1000);
    const idle = await time(20, 100);
    return { busyP50Us: quantile(busy, 0.5), busyP90Us: quantile(busy, 0.9), idleP50Us: quantile(idle, 0.5), idleP90Us: quantile(idle, 0.9) };
  } finally {
    redis.disconnect();
  }
}
