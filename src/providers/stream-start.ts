import type { ChatCompletionChunk } from './openai-types';
import type { UpstreamStream } from './provider';
import { UpstreamError } from './upstream-error';
import { toUpstreamError } from './upstream-http';

/**
 * Waits for a stream's first chunk before handing it over, so that everything up to it
 * (connect, status, an early error event) fails as a retryable error while the client has
 * received nothing yet; after it, failures are `stream` failures the relay reports in-band.
 */
export async function startStream(chunks: AsyncGenerator<ChatCompletionChunk>): Promise<UpstreamStream> {
  let first: IteratorResult<ChatCompletionChunk>;
  try {
    first = await chunks.next();
  } catch (err) {
    throw err instanceof UpstreamError && err.failure === 'stream' ? new UpstreamError('server', err.message) : toUpstreamError(err, false);
  }
  return { chunks: resume(first, chunks) };
}

async function* resume<T>(first: IteratorResult<T>, rest: AsyncGenerator<T>): AsyncGenerator<T> {
  if (first.done) return;
  try {
    yield first.value;
    yield* rest;
  } finally {
    await rest.return(undefined);
  }
}
