import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SseParser } from './sse-parser';

describe('SseParser', () => {
  it('parses data events and ignores comments', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push(': ping\n\ndata: {"a":1}\n\ndata: [DONE]\n\n'), [
      { event: undefined, data: '{"a":1}' },
      { event: undefined, data: '[DONE]' },
    ]);
  });

  it('joins events split across chunks, byte by byte included', () => {
    const text = 'event: message_start\ndata: {"x":"é"}\n\n';
    const bytes = Buffer.from(text);
    const parser = new SseParser();
    const events = [];
    for (const byte of bytes) events.push(...parser.push(Uint8Array.of(byte)));
    assert.deepEqual(events, [{ event: 'message_start', data: '{"x":"é"}' }]);
  });

  it('accepts \\r\\n and \\r line ends, even with \\r\\n split between chunks', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('data: one\r'), []);
    assert.deepEqual(parser.push('\n\r\ndata: two\r\r\n'), [
      { event: undefined, data: 'one' },
      { event: undefined, data: 'two' },
    ]);
  });

  it('joins multi-line data with newlines and resets the event name per event', () => {
    const parser = new SseParser();
    assert.deepEqual(parser.push('event: a\ndata: 1\ndata: 2\n\ndata: 3\n\n'), [
      { event: 'a', data: '1\n2' },
      { event: undefined, data: '3' },
    ]);
  });
});
