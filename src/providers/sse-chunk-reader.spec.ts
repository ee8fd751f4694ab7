import assert from 'node:assert/strict';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { ChatCompletionChunk } from './openai-types';
import { EventDecoder, parseEventData, SseChunkReader } from './sse-chunk-reader';
import { UpstreamError } from './upstream-error';

/** The OpenAI rules in miniature: `[DONE]` ends, anything else is a chunk. */
const decode: EventDecoder = (event, emit) => {
  if (event.data === '[DONE]') return true;
  emit(parseEventData(event.data) as ChatCompletionChunk);
  return false;
};

const event = (n: number): string => `data: {"n":${n}}\n\n`;
const ns = (chunks: ChatCompletionChunk[]): number[] => chunks.map((c) => (c as unknown as { n: number }).n);

function reader(body = new PassThrough()): { body: PassThrough; chunks: SseChunkReader } {
  return { body, chunks: new SseChunkReader(body, decode, 'ended before [DONE]') };
}

async function drain(chunks: SseChunkReader): Promise<ChatCompletionChunk[]> {
  const out: ChatCompletionChunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

describe('SseChunkReader', () => {
  it('hands over the chunks in order, events split across reads included, and lets go of the body at the terminator', async () => {
    const { body, chunks } = reader();
    const all = `${event(1)}${event(2)}${event(3)}data: [DONE]\n\n`;
    body.write(all.slice(0, 7));
    body.write(all.slice(7, 30));
    body.write(all.slice(30));
    assert.deepEqual(ns(await drain(chunks)), [1, 2, 3]);
    assert.equal(body.destroyed, true);
  });

  it('waits for the next chunk when the relay is ahead of the upstream', async () => {
    const { body, chunks } = reader();
    const next = chunks.next();
    setImmediate(() => body.write(event(7)));
    assert.deepEqual(ns([(await next).value as ChatCompletionChunk]), [7]);
  });

  it('pauses reading while the relay is 32 chunks behind, and resumes once it caught up', async () => {
    const { body, chunks } = reader();
    body.write(Array.from({ length: 40 }, (_, i) => event(i)).join(''));
    await new Promise(setImmediate);
    assert.equal(body.isPaused(), true);
    for (let i = 0; i < 39; i++) await chunks.next();
    assert.equal(body.isPaused(), true, 'still behind');
    assert.deepEqual(ns([(await chunks.next()).value as ChatCompletionChunk]), [39]);
    assert.equal(body.isPaused(), false);
  });

  it('delivers the chunks read before a failure, then the failure as a stream error', async () => {
    const { body, chunks } = reader();
    body.write(`${event(1)}${event(2)}data: {not json\n\n${event(3)}`);
    assert.deepEqual(ns([(await chunks.next()).value, (await chunks.next()).value] as ChatCompletionChunk[]), [1, 2]);
    await assert.rejects(chunks.next(), (err: unknown) => err instanceof UpstreamError && err.failure === 'stream' && /unreadable/.test(err.message));
    assert.equal(body.destroyed, true);
  });

  it('fails with its own message when the body ends before the terminator', async () => {
    const { body, chunks } = reader();
    body.end(event(1));
    assert.deepEqual(ns([(await chunks.next()).value as ChatCompletionChunk]), [1]);
    await assert.rejects(chunks.next(), (err: unknown) => err instanceof UpstreamError && err.failure === 'stream' && err.message === 'ended before [DONE]');
  });

  it('rejects a waiting relay when the body errors (a cut connection)', async () => {
    const { body, chunks } = reader();
    const next = chunks.next();
    body.destroy(new Error('socket hang up'));
    await assert.rejects(next, (err: unknown) => err instanceof UpstreamError && err.failure === 'stream');
  });

  it('lets go of the body when the relay stops early', async () => {
    const { body, chunks } = reader();
    body.write(event(1));
    await chunks.next();
    const closed = once(body, 'close');
    assert.deepEqual(await chunks.return(), { value: undefined, done: true });
    await closed;
    assert.equal(body.destroyed, true);
    assert.deepEqual(await chunks.next(), { value: undefined, done: true });
  });

  it('ready() waits for the first chunk and keeps it for the relay', async () => {
    const { body, chunks } = reader();
    const ready = chunks.ready();
    body.write(`${event(1)}`);
    await ready;
    body.write(`${event(2)}data: [DONE]\n\n`);
    assert.deepEqual(ns(await drain(chunks)), [1, 2]);
  });
});
