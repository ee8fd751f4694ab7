import assert from 'node:assert/strict';
import { APIError } from 'openai';

/** A raw chat completion POST, for what the SDK hides: headers, status lines and SSE bytes. */
export function postCompletion(url: string, key: string, body: unknown, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal,
  });
}

/** The `data:` payloads of an SSE body, in order; asserts the body ends on an event boundary and every event is one `data:` line. */
export function sseData(text: string): string[] {
  assert.ok(text.endsWith('\n\n'), 'the stream ends mid-event');
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      assert.match(event, /^data: [^\n]*$/, `unexpected event ${JSON.stringify(event.slice(0, 80))}`);
      return event.slice('data: '.length);
    });
}

/** The failure of an SDK call, which must be an APIError. */
export async function apiError(call: Promise<unknown>): Promise<APIError> {
  try {
    await call;
  } catch (err) {
    assert.ok(err instanceof APIError, `expected an APIError, got ${String(err)}`);
    return err;
  }
  assert.fail('the call succeeded');
}
