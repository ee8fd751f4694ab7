import type { Readable } from 'node:stream';
import type { ChatCompletionChunk } from './openai-types';
import { SseEvent, SseParser } from './sse-parser';
import { UpstreamError } from './upstream-error';
import { toUpstreamError } from './upstream-http';

/**
 * Turns one upstream event into the chunks the client gets (`emit`, zero or more); returns true
 * for the event that ends the stream. Throws an UpstreamError for an unreadable or error event.
 */
export type EventDecoder = (event: SseEvent, emit: (chunk: ChatCompletionChunk) => void) => boolean;

/** An event's JSON data; an unreadable one fails the stream. */
export function parseEventData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    throw new UpstreamError('stream', 'The upstream sent an unreadable event.');
  }
}

/** How far reading may run ahead of the relay (a client slower than the upstream) before it pauses. */
const READ_AHEAD = 32;

interface Waiter {
  resolve(result: IteratorResult<ChatCompletionChunk>): void;
  reject(err: unknown): void;
}

/**
 * An upstream's SSE body as the chunks of a stream, pulled one at a time by the relay. Bytes are
 * parsed as they arrive ('data' events) into a queue, so a pull costs one promise rather than a
 * chain of async iterators (the body stream's, then one generator per layer): that chain's
 * garbage, on every chunk of every stream, made young-generation pauses that held up other
 * streams' chunks. Reading pauses while the relay is READ_AHEAD chunks behind, so a slow client
 * slows the upstream down instead of filling memory. Failures come after the chunks read before
 * them, as `stream` UpstreamErrors.
 */
export class SseChunkReader implements AsyncIterableIterator<ChatCompletionChunk> {
  private readonly parser = new SseParser();
  private readonly queue: ChatCompletionChunk[] = [];
  private head = 0;
  /** The terminator was read, or the relay let go. */
  private finished = false;
  private failure: UpstreamError | undefined;
  private waiter: Waiter | undefined;
  private readonly emit = (chunk: ChatCompletionChunk): void => {
    this.queue.push(chunk);
  };

  constructor(
    private readonly body: Readable,
    private readonly decode: EventDecoder,
    /** The failure when the body ends before the terminator. */
    unterminated: string,
  ) {
    body.on('data', (bytes: Buffer) => this.read(bytes));
    body.on('end', () => this.fail(new UpstreamError('stream', unterminated)));
    body.on('error', (err) => this.fail(toUpstreamError(err, true)));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<ChatCompletionChunk>> {
    if (this.head < this.queue.length) return Promise.resolve({ value: this.take(), done: false });
    // Finished wins: a relay that let go after a failure is done, not failed again.
    if (this.finished) return Promise.resolve({ value: undefined, done: true });
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The relay stops early (client gone, failure): the body is let go at once. */
  return(): Promise<IteratorResult<ChatCompletionChunk>> {
    this.finish();
    this.queue.length = 0;
    this.head = 0;
    return Promise.resolve({ value: undefined, done: true });
  }

  /** Resolves once the first chunk is in (or the stream ended empty); rejects if it failed first. */
  async ready(): Promise<void> {
    const first = await this.next();
    if (first.done) return;
    if (this.head > 0) this.queue[--this.head] = first.value;
    else this.queue.unshift(first.value);
  }

  private read(bytes: Buffer): void {
    if (this.finished || this.failure) return;
    try {
      for (const event of this.parser.push(bytes)) {
        if (this.decode(event, this.emit)) {
          this.finish();
          break;
        }
      }
    } catch (err) {
      this.fail(toUpstreamError(err, true));
    }
    if (this.queue.length - this.head >= READ_AHEAD) this.body.pause();
    this.wake();
  }

  private take(): ChatCompletionChunk {
    const chunk = this.queue[this.head]!;
    if (++this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
      if (this.body.isPaused() && !this.finished) this.body.resume();
    }
    return chunk;
  }

  private fail(err: UpstreamError): void {
    if (this.finished || this.failure) return;
    this.failure = err;
    this.release();
    this.wake();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.release();
    this.wake();
  }

  /** Hands a waiting relay what is there: a chunk, the failure, or the end. */
  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    if (this.head < this.queue.length) waiter.resolve({ value: this.take(), done: false });
    else if (this.finished) waiter.resolve({ value: undefined, done: true });
    else if (this.failure) waiter.reject(this.failure);
    else return;
    this.waiter = undefined;
  }

  private release(): void {
    if (!this.body.destroyed) this.body.destroy();
  }
}
