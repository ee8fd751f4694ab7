/*
 * A raw node:http Server-Sent Events client for the benchmark: no SDK, no fetch, so what it
 * measures is the target and the wire, not client-side parsing layers. It times the first content
 * event of each stream (time to first token) and the gaps between consecutive content events.
 */
import { setMaxListeners } from 'node:events';
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';

export interface SseTarget {
  /** Full URL of the chat completions endpoint. */
  url: string;
  headers: Record<string, string>;
  /** JSON request body with `"stream": true`. */
  body: string;
}

export interface StreamTiming {
  ok: boolean;
  /** Request written → first content event received, ms; NaN when none arrived. */
  ttftMs: number;
  /** Arrival gaps between consecutive content events, ms. */
  gapsMs: number[];
  contentEvents: number;
  error?: string;
}

interface StreamOptions {
  agent: Agent;
  /** Parse events and time content chunks; off for the memory fleet, which only counts bytes. */
  parse: boolean;
  /** Called once, when the first body byte arrives. */
  onFirstByte?: () => void;
  signal?: AbortSignal;
}

/** One streaming completion, timed. Never rejects: failures come back as `ok: false`. */
export function openStream(target: SseTarget, options: StreamOptions): Promise<StreamTiming> {
  return new Promise((resolve) => {
    const timing: StreamTiming = { ok: false, ttftMs: Number.NaN, gapsMs: [], contentEvents: 0 };
    let settled = false;
    const finish = (error?: string): void => {
      if (settled) return;
      settled = true;
      if (error) timing.error = error;
      resolve(timing);
    };
    const body = Buffer.from(target.body);
    const req = request(target.url, {
      method: 'POST',
      agent: options.agent,
      headers: { ...target.headers, 'content-type': 'application/json', 'content-length': body.length, accept: 'text/event-stream' },
      signal: options.signal,
    });
    const started = performance.now();
    let lastContent = -1;
    let buffered = '';
    let sawDone = false;
    req.on('error', (err) => finish(err.message));
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        finish(`HTTP ${res.statusCode}`);
        return;
      }
      let first = true;
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const now = performance.now();
        if (first) {
          first = false;
          options.onFirstByte?.();
        }
        if (!options.parse) {
          if (text.includes('data: [DONE]')) sawDone = true;
          return;
        }
        buffered += text;
        let end: number;
        while ((end = buffered.indexOf('\n\n')) !== -1) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          if (!event.startsWith('data: ')) continue;
          const data = event.slice(6);
          if (data === '[DONE]') {
            sawDone = true;
            continue;
          }
          if (!isContent(data)) continue;
          timing.contentEvents++;
          if (lastContent < 0) timing.ttftMs = now - started;
          else timing.gapsMs.push(now - lastContent);
          lastContent = now;
        }
      });
      res.on('error', (err) => finish(err.message));
      res.on('end', () => {
        timing.ok = sawDone;
        finish(sawDone ? undefined : 'stream ended without [DONE]');
      });
    });
    req.end(body);
  });
}

function isContent(data: string): boolean {
  try {
    const chunk = JSON.parse(data) as { choices?: Array<{ delta?: { content?: unknown } }> };
    const content = chunk.choices?.[0]?.delta?.content;
    return typeof content === 'string' && content.length > 0;
  } catch {
    return false;
  }
}

/** `total` streams, at most `concurrency` at a time, over keep-alive connections. */
export async function runStreams(target: SseTarget, total: number, concurrency: number): Promise<StreamTiming[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const results: StreamTiming[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      results.push(await openStream(target, { agent, parse: true }));
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    agent.destroy();
  }
  return results;
}

/**
 * Many long streams held open at once (the memory figure): opened with at most `maxConnecting`
 * awaiting their first byte, so the target's accept backlog is never the bottleneck.
 */
export class StreamFleet {
  opened = 0;
  started = 0;
  ended = 0;
  failed = 0;
  readonly errors = new Map<string, number>();
  private readonly agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  private readonly abort = new AbortController();
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly target: SseTarget) {
    // Every stream of the fleet listens on the one signal.
    setMaxListeners(0, this.abort.signal);
  }

  get open(): number {
    return this.opened - this.ended;
  }

  /** Opens `count` more streams; resolves when each has received its first byte (or failed). */
  async add(count: number, maxConnecting = 200): Promise<void> {
    let left = count;
    let connecting = 0;
    await new Promise<void>((done) => {
      const pump = (): void => {
        while (left > 0 && connecting < maxConnecting) {
          left--;
          connecting++;
          this.opened++;
          let counted = false;
          const firstByte = (): void => {
            if (counted) return;
            counted = true;
            connecting--;
            if (left > 0) pump();
            else if (connecting === 0) done();
          };
          const run = openStream(this.target, {
            agent: this.agent,
            parse: false,
            signal: this.abort.signal,
            onFirstByte: () => {
              this.started++;
              firstByte();
            },
          }).then((timing) => {
            this.ended++;
            if (!timing.ok && timing.error) {
              this.failed++;
              this.errors.set(timing.error, (this.errors.get(timing.error) ?? 0) + 1);
            }
            firstByte();
          });
          this.running.add(run);
          void run.finally(() => this.running.delete(run));
        }
      };
      if (count <= 0) done();
      else pump();
    });
  }

  /** Resolves when every stream has ended, or after `timeoutMs` (false then). */
  async settle(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const all = Promise.all([...this.running]).then(() => true as const);
    try {
      return await Promise.race([all, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Cuts every stream still open. */
  close(): void {
    this.abort.abort();
    this.agent.destroy();
  }
}
