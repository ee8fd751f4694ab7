/*
 * The engine shared by the fake upstream providers: a real node:http server on 127.0.0.1 that
 * records every request, counts concurrency and client aborts, and applies the test's controls
 * (delays, failures, cut or stalled streams). The wire format itself is a dialect's job
 * (openai-upstream.ts, anthropic-upstream.ts).
 */
import { randomBytes } from 'node:crypto';
import { createServer, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** An HTTP failure answered instead of the reply. */
export interface UpstreamFailure {
  status: number;
  /** Replaces the whole body; a string is sent as is (text/plain unless `headers` set a content type). */
  body?: unknown;
  /** Replaces only the message of the provider's usual error body for this status. */
  message?: string;
  /** Sent as the `Retry-After` header (seconds or an HTTP date). */
  retryAfter?: number | string;
  headers?: Record<string, string>;
}

/** An error event sent inside an otherwise healthy stream, which then ends without its terminator. */
export interface UpstreamStreamError {
  /** Content chunks sent before the error; default 0. */
  afterChunks?: number;
  /** Provider error type; default `server_error` (OpenAI) or `overloaded_error` (Anthropic). */
  type?: string;
  message?: string;
}

/** How the next reply behaves; set as a default with `set()` or for one request with `next()`. */
export interface UpstreamBehaviour {
  /** Reply text (a tool-result answer is always `Tool result: <content>`). */
  text?: string;
  /** Wait before the status line and headers. */
  delayMs?: number;
  /** Wait between consecutive stream content chunks. */
  chunkDelayMs?: number;
  /** Number of content chunks; default one per word (tool arguments: 8 characters each). */
  chunks?: number;
  fail?: UpstreamFailure;
  /** Destroy the connection without answering anything. */
  dropConnection?: boolean;
  /** Destroy the socket after N content chunks (non-streaming: after headers and half the body). */
  cutAfterChunks?: number;
  /** Streams only. */
  streamError?: UpstreamStreamError;
  /** Never answer; the request stays open until the client goes away. */
  hang?: boolean;
  /** Streams only: send the headers and N content chunks, then hold the stream open forever. */
  hangAfterChunks?: number;
  /** Leave `usage` out of replies (and the usage chunk out of OpenAI streams). */
  omitUsage?: boolean;
  /** Tool-call arguments; default derived from the tool's JSON schema. */
  toolArguments?: Record<string, unknown>;
  /** Anthropic: a text block sent before the tool_use block. */
  toolPreambleText?: string;
  /** Anthropic: reported `cache_read_input_tokens` / `cache_creation_input_tokens`. */
  cacheReadTokens?: number;
  cacheCreationTokens?: number;
}

export interface UpstreamSettings extends UpstreamBehaviour {
  /** When set, only this key is accepted (otherwise any non-empty key). */
  apiKey?: string;
  /** When set, other models get the provider's 404; also the `GET /v1/models` list. */
  models?: string[];
  /** Keep request recordings; turn off for long benchmark runs. Default true. */
  record?: boolean;
}

export type RequestOutcome =
  | 'pending'
  | 'completed'
  | 'failed'
  | 'cut'
  | 'stream-error'
  | 'dropped'
  | 'aborted';

/** What the fake answered (or would have answered, when the stream was cut). */
export interface UpstreamReply {
  stream: boolean;
  text?: string;
  toolCall?: { id: string; name: string; arguments: string };
  /** OpenAI `finish_reason` or Anthropic `stop_reason`. */
  finishReason: string;
  /** Anthropic: the stop sequence that ended the reply. */
  stopSequence?: string;
  /** Anthropic: input + cache read + cache creation tokens. */
  promptTokens: number;
  completionTokens: number;
  /** The usage object exactly as sent; undefined when none was sent. */
  usage?: Record<string, unknown>;
}

export interface RecordedRequest {
  /** Position since the last reset. */
  index: number;
  method: string;
  /** Path with query string. */
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: string;
  /** Parsed JSON body; undefined when empty or malformed. */
  body: unknown;
  receivedAt: number;
  endedAt?: number;
  status?: number;
  outcome: RequestOutcome;
  reply?: UpstreamReply;
}

export interface UpstreamAbort {
  path: string;
  at: number;
  request?: RecordedRequest;
}

/** One request in progress, handed to the dialect. */
export interface Exchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly method: string;
  readonly pathname: string;
  readonly headers: IncomingHttpHeaders;
  rawBody: string;
  body: unknown;
  /** False when the body was empty or not JSON. */
  bodyIsJson: boolean;
  /** Settings merged with this request's one-shot behaviour. */
  behaviour: UpstreamSettings;
  readonly record: RecordedRequest | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The server itself ended the connection (cut, drop): not a client abort. */
  serverClosed: boolean;
  closed: boolean;
}

/** A server-sent event; `pre` events never trigger cut/stall/error, `content` ones are counted. */
export interface StreamEvent {
  kind: 'pre' | 'content' | 'post';
  text: string;
}

export interface UpstreamDialect {
  /** Path appended to the origin to form `url` (`/v1` for OpenAI, empty for Anthropic). */
  readonly basePath: string;
  isCompletion(method: string, pathname: string): boolean;
  /** Answers the request (auth, validation, reply) through the engine's json/stream methods. */
  handle(exchange: Exchange, upstream: FakeUpstream): void;
  /** The provider's error body for a status, with an optional message override. */
  errorBody(status: number, message?: string): unknown;
  /** The provider's error event inside a stream. */
  streamErrorEvent(error: UpstreamStreamError): string;
  /** Extra headers on every answer (request ids). */
  responseHeaders(upstream: FakeUpstream): OutgoingHttpHeaders;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

export class FakeUpstream {
  private readonly server: Server;
  private readonly defaults: UpstreamSettings;
  private settings: UpstreamSettings;
  private queue: UpstreamBehaviour[] = [];
  private readonly recorded: RecordedRequest[] = [];
  private readonly open = new Set<Exchange>();
  private received = 0;
  private current = 0;
  private peak = 0;
  private abortCount = 0;
  private abortsAwaited = 0;
  private readonly abortLog: UpstreamAbort[] = [];
  private abortWaiters: Array<() => void> = [];
  private requestWaiters: Array<() => void> = [];
  private idCounter = 0;
  private readonly idTag = randomBytes(6).toString('hex');
  private origin = '';
  private closing: Promise<void> | undefined;

  constructor(
    private readonly dialect: UpstreamDialect,
    options: UpstreamSettings = {},
  ) {
    this.defaults = { ...options };
    this.settings = { ...options };
    this.server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => this.onRequest(req, res));
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.origin = `http://127.0.0.1:${this.port}`;
    return this;
  }

  /** Base URL as the provider's `base_url` convention wants it. */
  get url(): string {
    return this.origin + this.dialect.basePath;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Every request since the last reset, in arrival order (empty when recording is off). */
  get requests(): readonly RecordedRequest[] {
    return this.recorded;
  }

  /** Requests received since the last reset, recorded or not. */
  get requestCount(): number {
    return this.received;
  }

  get inFlight(): number {
    return this.current;
  }

  get peakConcurrency(): number {
    return this.peak;
  }

  /** Requests the client closed before the server finished answering. */
  get aborts(): number {
    return this.abortCount;
  }

  get abortEvents(): readonly UpstreamAbort[] {
    return this.abortLog;
  }

  /** Changes the defaults for every later request. */
  set(options: UpstreamSettings): void {
    this.settings = { ...this.settings, ...options };
  }

  /** Queues one-shot behaviours: the next completion requests take them in order. */
  next(...behaviours: UpstreamBehaviour[]): void {
    this.queue.push(...behaviours);
  }

  /** Resolves on the next abort not yet awaited (one that already happened counts). */
  waitForAbort(timeoutMs = 2000): Promise<UpstreamAbort> {
    return this.waitFor(
      this.abortWaiters,
      () => this.abortCount > this.abortsAwaited,
      () => this.abortLog[this.abortsAwaited++]!,
      timeoutMs,
      `no client abort reached the fake upstream within ${timeoutMs} ms`,
    );
  }

  /** Resolves once `count` requests (bodies read) have arrived since the last reset. */
  waitForRequests(count: number, timeoutMs = 2000): Promise<void> {
    return this.waitFor(
      this.requestWaiters,
      () => this.received >= count,
      () => undefined,
      timeoutMs,
      `the fake upstream received ${this.received} of ${count} requests within ${timeoutMs} ms`,
    );
  }

  /** Restores the start options, empties the one-shot queue, clears recordings, aborts and peak. */
  reset(): void {
    this.settings = { ...this.defaults };
    this.queue = [];
    this.recorded.length = 0;
    this.abortLog.length = 0;
    this.received = 0;
    this.abortCount = 0;
    this.abortsAwaited = 0;
    this.peak = this.current;
  }

  /** Stops listening and destroys every connection, idle keep-alive and in-flight alike. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      for (const exchange of this.open) clearTimeout(exchange.timer);
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.closing;
  }

  // ---- used by the dialects ----

  /** A unique id: prefix + `length` characters. */
  newId(prefix: string, length: number): string {
    const tail = this.idTag + (++this.idCounter).toString(36).padStart(8, '0');
    return prefix + tail.padStart(length, '0').slice(-length);
  }

  setReply(exchange: Exchange, reply: UpstreamReply): void {
    if (exchange.record) exchange.record.reply = reply;
  }

  json(exchange: Exchange, status: number, body: unknown): void {
    if (exchange.closed) return;
    const text = JSON.stringify(body);
    const headers: OutgoingHttpHeaders = {
      ...this.dialect.responseHeaders(this),
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    };
    this.setStatus(exchange, status, status < 400 ? 'completed' : 'failed');
    const cutAfter = exchange.behaviour.cutAfterChunks;
    if (cutAfter !== undefined && status < 400) {
      exchange.res.writeHead(status, headers);
      exchange.res.write(text.slice(0, Math.floor(text.length / 2)));
      this.cut(exchange);
      return;
    }
    exchange.res.writeHead(status, headers);
    exchange.res.end(text);
  }

  /** Sends the events as SSE, applying chunk delay, cut, stall and mid-stream error controls. */
  stream(exchange: Exchange, events: StreamEvent[]): void {
    if (exchange.closed) return;
    const { res, behaviour } = exchange;
    this.setStatus(exchange, 200, 'completed');
    res.writeHead(200, {
      ...this.dialect.responseHeaders(this),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
    });
    const gap = behaviour.chunkDelayMs ?? 0;
    let i = 0;
    let sent = 0;
    let waited = false;
    const step = (): void => {
      exchange.timer = undefined;
      if (exchange.closed) return;
      while (i < events.length) {
        const event = events[i]!;
        if (event.kind !== 'pre') {
          if (behaviour.cutAfterChunks !== undefined && sent >= behaviour.cutAfterChunks) {
            this.setStatus(exchange, 200, 'cut');
            this.cut(exchange);
            return;
          }
          if (behaviour.hangAfterChunks !== undefined && sent >= behaviour.hangAfterChunks) return;
          if (behaviour.streamError && sent >= (behaviour.streamError.afterChunks ?? 0)) {
            this.setStatus(exchange, 200, 'stream-error');
            res.end(this.dialect.streamErrorEvent(behaviour.streamError));
            return;
          }
        }
        if (event.kind === 'content') {
          if (sent > 0 && gap > 0 && !waited) {
            waited = true;
            exchange.timer = setTimeout(step, gap);
            return;
          }
          waited = false;
          sent++;
        }
        res.write(event.text);
        i++;
      }
      res.end();
    };
    step();
  }

  // ---- internals ----

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.current++;
    if (this.current > this.peak) this.peak = this.current;
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const record: RecordedRequest | undefined =
      this.settings.record === false
        ? undefined
        : {
            index: this.recorded.length,
            method: req.method ?? 'GET',
            path: url,
            headers: req.headers,
            rawBody: '',
            body: undefined,
            receivedAt: Date.now(),
            outcome: 'pending',
          };
    if (record) this.recorded.push(record);
    const exchange: Exchange = {
      req,
      res,
      method: req.method ?? 'GET',
      pathname: query === -1 ? url : url.slice(0, query),
      headers: req.headers,
      rawBody: '',
      body: undefined,
      bodyIsJson: false,
      behaviour: this.settings,
      record,
      timer: undefined,
      serverClosed: false,
      closed: false,
    };
    this.open.add(exchange);
    req.on('error', () => undefined);
    res.on('error', () => undefined);
    res.on('close', () => this.onClose(exchange));

    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (exchange.closed) return;
      if (tooLarge) {
        this.json(exchange, 413, this.dialect.errorBody(413));
        return;
      }
      exchange.rawBody = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
      if (exchange.rawBody.length > 0) {
        try {
          exchange.body = JSON.parse(exchange.rawBody);
          exchange.bodyIsJson = true;
        } catch {
          exchange.bodyIsJson = false;
        }
      }
      if (record) {
        record.rawBody = exchange.rawBody;
        record.body = exchange.body;
      }
      this.received++;
      this.notify(this.requestWaiters);
      this.dispatch(exchange);
    });
  }

  private dispatch(exchange: Exchange): void {
    if (!this.dialect.isCompletion(exchange.method, exchange.pathname)) {
      this.answer(exchange);
      return;
    }
    const oneShot = this.queue.shift();
    const behaviour = oneShot ? { ...this.settings, ...oneShot } : this.settings;
    exchange.behaviour = behaviour;
    const delay = behaviour.delayMs ?? 0;
    if (delay > 0) {
      exchange.timer = setTimeout(() => {
        exchange.timer = undefined;
        this.afterDelay(exchange);
      }, delay);
    } else {
      this.afterDelay(exchange);
    }
  }

  private afterDelay(exchange: Exchange): void {
    if (exchange.closed) return;
    const { behaviour } = exchange;
    if (behaviour.hang) return;
    if (behaviour.dropConnection) {
      this.setStatus(exchange, 0, 'dropped');
      exchange.serverClosed = true;
      exchange.res.socket?.destroy();
      return;
    }
    if (behaviour.fail) {
      this.fail(exchange, behaviour.fail);
      return;
    }
    this.answer(exchange);
  }

  private answer(exchange: Exchange): void {
    try {
      this.dialect.handle(exchange, this);
    } catch (err) {
      // A bug in the fake must show up as a provider-shaped 500, never crash the test process.
      if (!exchange.res.headersSent) this.json(exchange, 500, this.dialect.errorBody(500, `fake upstream bug: ${String(err)}`));
      else exchange.res.destroy();
    }
  }

  private fail(exchange: Exchange, failure: UpstreamFailure): void {
    const { res } = exchange;
    const headers: OutgoingHttpHeaders = { ...this.dialect.responseHeaders(this) };
    if (failure.retryAfter !== undefined) headers['retry-after'] = String(failure.retryAfter);
    let text: string;
    if (typeof failure.body === 'string') {
      text = failure.body;
      headers['content-type'] = 'text/plain; charset=utf-8';
    } else {
      text = JSON.stringify(failure.body ?? this.dialect.errorBody(failure.status, failure.message));
      headers['content-type'] = 'application/json';
    }
    Object.assign(headers, failure.headers);
    headers['content-length'] = Buffer.byteLength(text);
    this.setStatus(exchange, failure.status, 'failed');
    res.writeHead(failure.status, headers);
    res.end(text);
  }

  /** Ends the connection once what was written is flushed, without the body's terminator. */
  private cut(exchange: Exchange): void {
    exchange.serverClosed = true;
    if (exchange.record) exchange.record.outcome = 'cut';
    const socket = exchange.res.socket;
    if (!socket) return;
    socket.once('finish', () => socket.destroy());
    socket.end();
  }

  private setStatus(exchange: Exchange, status: number, outcome: RequestOutcome): void {
    if (!exchange.record) return;
    exchange.record.status = status;
    exchange.record.outcome = outcome;
  }

  private onClose(exchange: Exchange): void {
    if (exchange.closed) return;
    exchange.closed = true;
    clearTimeout(exchange.timer);
    this.open.delete(exchange);
    this.current--;
    const record = exchange.record;
    if (record) record.endedAt = Date.now();
    if (exchange.res.writableEnded || exchange.serverClosed || this.closing) return;
    if (record) record.outcome = 'aborted';
    this.abortCount++;
    this.abortLog.push({ path: exchange.req.url ?? '/', at: Date.now(), request: record });
    this.notify(this.abortWaiters);
  }

  private notify(waiters: Array<() => void>): void {
    if (waiters.length === 0) return;
    for (const waiter of waiters.slice()) waiter();
  }

  private waitFor<T>(
    waiters: Array<() => void>,
    ready: () => boolean,
    take: () => T,
    timeoutMs: number,
    message: string,
  ): Promise<T> {
    if (ready()) return Promise.resolve(take());
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        if (!ready()) return;
        remove();
        resolve(take());
      };
      const remove = (): void => {
        clearTimeout(timer);
        const at = waiters.indexOf(check);
        if (at !== -1) waiters.splice(at, 1);
      };
      const timer = setTimeout(() => {
        remove();
        reject(new Error(message));
      }, timeoutMs);
      waiters.push(check);
    });
  }
}

// ---- text helpers shared by the dialects ----

export const DEFAULT_REPLY = 'Hello from the fake upstream.';

const WORD = /\S+/g;

/** Deterministic token count: whitespace-separated words. */
export function countWords(text: string): number {
  let n = 0;
  WORD.lastIndex = 0;
  while (WORD.exec(text) !== null) n++;
  return n;
}

/** Words in every `content` / `text` string under a value (messages, system); depth-bounded. */
export function countPromptWords(value: unknown, depth = 0): number {
  if (typeof value === 'string') return countWords(value);
  if (depth > 8 || value === null || typeof value !== 'object') return 0;
  if (Array.isArray(value)) {
    let n = 0;
    for (const item of value) n += countPromptWords(item, depth + 1);
    return n;
  }
  const object = value as Record<string, unknown>;
  return countPromptWords(object.content, depth + 1) + countPromptWords(object.text, depth + 1);
}

/** The first `max` words of a text, spacing kept. */
export function firstWords(text: string, max: number): string {
  if (max <= 0) return '';
  WORD.lastIndex = 0;
  let n = 0;
  let match: RegExpExecArray | null;
  while ((match = WORD.exec(text)) !== null) {
    if (++n === max) return text.slice(0, match.index + match[0].length);
  }
  return text;
}

/** Cuts the text before the earliest stop sequence, if one occurs. */
export function applyStop(text: string, stops: readonly string[]): { text: string; stop?: string } {
  let at = -1;
  let found: string | undefined;
  for (const stop of stops) {
    if (stop.length === 0) continue;
    const index = text.indexOf(stop);
    if (index !== -1 && (at === -1 || index < at)) {
      at = index;
      found = stop;
    }
  }
  return found === undefined ? { text } : { text: text.slice(0, at), stop: found };
}

/** Splits a reply into stream pieces: `count` nearly equal pieces, or one per word (leading space kept). */
export function splitText(text: string, count: number | undefined): string[] {
  if (text.length === 0) return [];
  if (count === undefined) {
    const pieces = text.match(/\s*\S+/g) ?? [text];
    const joined = pieces.join('');
    if (joined.length < text.length) pieces[pieces.length - 1] += text.slice(joined.length);
    return pieces;
  }
  return splitEvenly(text, count);
}

/** Splits on code points, never inside a surrogate pair. */
export function splitEvenly(text: string, count: number): string[] {
  const points = Array.from(text);
  const n = Math.max(1, Math.min(Math.floor(count), points.length));
  const pieces: string[] = [];
  for (let k = 0; k < n; k++) {
    pieces.push(points.slice(Math.floor((k * points.length) / n), Math.floor(((k + 1) * points.length) / n)).join(''));
  }
  return pieces;
}

/** Pieces of at most `size` code points. */
export function splitBySize(text: string, size: number): string[] {
  const points = Array.from(text);
  const pieces: string[] = [];
  for (let k = 0; k < points.length; k += size) pieces.push(points.slice(k, k + size).join(''));
  return pieces;
}

/** Deterministic sample arguments for a JSON schema's properties. */
export function sampleArguments(schema: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (!isObject(schema) || !isObject(schema.properties)) return out;
  for (const [name, property] of Object.entries(schema.properties)) {
    out[name] = sampleValue(property);
  }
  return out;
}

function sampleValue(schema: unknown): unknown {
  if (!isObject(schema)) return null;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[0];
  switch (schema.type) {
    case 'string':
      return 'Paris';
    case 'number':
    case 'integer':
      return 42;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return null;
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
