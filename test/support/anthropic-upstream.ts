/*
 * A fake Anthropic Messages API upstream speaking the real wire format, streaming included:
 * `POST /v1/messages`, `GET /v1/models`, Anthropic's error shape, and the validation the real
 * API applies to what a translating gateway sends (required headers and max_tokens, extra
 * fields refused, roles, empty content, tool_use/tool_result pairing, temperature 0..1).
 */
import type { OutgoingHttpHeaders } from 'node:http';
import {
  applyStop,
  countPromptWords,
  countWords,
  DEFAULT_REPLY,
  Exchange,
  FakeUpstream,
  firstWords,
  isObject,
  sampleArguments,
  splitBySize,
  splitEvenly,
  splitText,
  StreamEvent,
  UpstreamDialect,
  UpstreamReply,
  UpstreamSettings,
  UpstreamStreamError,
} from './fake-upstream';

const FIELDS = new Set([
  'model',
  'messages',
  'max_tokens',
  'system',
  'stop_sequences',
  'stream',
  'temperature',
  'top_p',
  'top_k',
  'tools',
  'tool_choice',
  'metadata',
  'thinking',
  'service_tier',
  'container',
  'mcp_servers',
  'context_management',
]);
const BLOCK_TYPES = new Set([
  'text',
  'image',
  'document',
  'search_result',
  'thinking',
  'redacted_thinking',
  'tool_use',
  'tool_result',
  'server_tool_use',
  'web_search_tool_result',
  'container_upload',
]);
const DEFAULT_MODELS = ['claude-sonnet-4-20250514', 'claude-3-5-haiku-20241022'];
const TOOL_NAME = /^[a-zA-Z0-9_-]{1,64}$/;

interface AnthropicError {
  type: 'error';
  error: { type: string; message: string };
}

class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly type = 'invalid_request_error',
  ) {
    super(message);
  }
}

function anthropicError(type: string, message: string): AnthropicError {
  return { type: 'error', error: { type, message } };
}

function sse(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

export class AnthropicDialect implements UpstreamDialect {
  readonly basePath = '';

  isCompletion(method: string, pathname: string): boolean {
    return method === 'POST' && pathname.endsWith('/v1/messages');
  }

  responseHeaders(upstream: FakeUpstream): OutgoingHttpHeaders {
    return { 'request-id': upstream.newId('req_', 24), 'anthropic-organization-id': 'fake-org' };
  }

  errorBody(status: number, message?: string): AnthropicError {
    switch (status) {
      case 400:
        return anthropicError('invalid_request_error', message ?? 'Invalid request.');
      case 401:
        return anthropicError('authentication_error', message ?? 'invalid x-api-key');
      case 403:
        return anthropicError('permission_error', message ?? 'Your API key does not have permission to use the specified resource.');
      case 404:
        return anthropicError('not_found_error', message ?? 'The requested resource could not be found.');
      case 413:
        return anthropicError('request_too_large', message ?? 'Request exceeds the maximum allowed number of bytes.');
      case 429:
        return anthropicError('rate_limit_error', message ?? 'Number of requests has exceeded your per-minute rate limit.');
      case 529:
        return anthropicError('overloaded_error', message ?? 'Overloaded');
      default:
        return status >= 500
          ? anthropicError('api_error', message ?? 'Internal server error')
          : anthropicError('invalid_request_error', message ?? 'Invalid request.');
    }
  }

  streamErrorEvent(error: UpstreamStreamError): string {
    return sse('error', anthropicError(error.type ?? 'overloaded_error', error.message ?? 'Overloaded'));
  }

  handle(exchange: Exchange, upstream: FakeUpstream): void {
    const { method, pathname } = exchange;
    const isModels = method === 'GET' && pathname.endsWith('/v1/models');
    const isCompletion = this.isCompletion(method, pathname);
    if (!isModels && !isCompletion) {
      upstream.json(exchange, 404, anthropicError('not_found_error', 'Not Found'));
      return;
    }
    try {
      this.checkHeaders(exchange);
      if (isModels) {
        const ids = exchange.behaviour.models ?? DEFAULT_MODELS;
        upstream.json(exchange, 200, {
          data: ids.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-05-14T00:00:00Z' })),
          has_more: false,
          first_id: ids[0] ?? null,
          last_id: ids[ids.length - 1] ?? null,
        });
        return;
      }
      this.complete(exchange, upstream);
    } catch (err) {
      if (!(err instanceof InvalidRequest)) throw err;
      upstream.json(exchange, err.status, anthropicError(err.type, err.message));
    }
  }

  private checkHeaders(exchange: Exchange): void {
    const key = exchange.headers['x-api-key'];
    if (typeof key !== 'string' || key.length === 0) {
      throw new InvalidRequest('x-api-key header is required', 401, 'authentication_error');
    }
    const expected = exchange.behaviour.apiKey;
    if (expected !== undefined && key !== expected) throw new InvalidRequest('invalid x-api-key', 401, 'authentication_error');
    // The real API answers a missing version header with 400, not 401.
    const version = exchange.headers['anthropic-version'];
    if (typeof version !== 'string' || version.length === 0) throw new InvalidRequest('anthropic-version: header is required');
  }

  private complete(exchange: Exchange, upstream: FakeUpstream): void {
    if (!exchange.bodyIsJson || !isObject(exchange.body)) {
      throw new InvalidRequest('There was an error parsing the body of your request. Please check that it is valid JSON.');
    }
    const body = exchange.body;
    const settings = exchange.behaviour;
    for (const field of Object.keys(body)) {
      if (!FIELDS.has(field)) throw new InvalidRequest(`${field}: Extra inputs are not permitted`);
    }
    if (typeof body.model !== 'string') throw new InvalidRequest(body.model === undefined ? 'model: Field required' : 'model: Input should be a valid string');
    if (body.max_tokens === undefined) throw new InvalidRequest('max_tokens: Field required');
    if (typeof body.max_tokens !== 'number' || !Number.isInteger(body.max_tokens)) throw new InvalidRequest('max_tokens: Input should be a valid integer');
    if (body.max_tokens < 1) throw new InvalidRequest('max_tokens: Input should be greater than or equal to 1');
    const messages = validateMessages(body.messages);
    validateSystem(body.system);
    validateSampling(body);
    const stops = validateStops(body.stop_sequences);
    const tools = validateTools(body.tools);
    validateToolChoice(body.tool_choice);
    if (body.stream !== undefined && typeof body.stream !== 'boolean') throw new InvalidRequest('stream: Input should be a valid boolean');
    if (settings.models && !settings.models.includes(body.model)) {
      throw new InvalidRequest(`model: ${body.model}`, 404, 'not_found_error');
    }

    const model = body.model;
    const stream = body.stream === true;
    const inputTokens = countPromptWords(body.system) + countPromptWords(messages);
    const cacheRead = settings.cacheReadTokens ?? 0;
    const cacheCreation = settings.cacheCreationTokens ?? 0;
    const last = messages[messages.length - 1]!;
    const results = last.role === 'user' && Array.isArray(last.content) ? last.content.filter((b) => b.type === 'tool_result') : [];
    const toolName = results.length > 0 ? undefined : chosenTool(tools, body.tool_choice);

    let reply: UpstreamReply;
    if (toolName !== undefined) {
      const tool = tools.find((t) => t.name === toolName);
      const input = settings.toolArguments ?? sampleArguments(tool?.input_schema);
      const args = JSON.stringify(input);
      const preamble = settings.toolPreambleText ?? '';
      reply = {
        stream,
        toolCall: { id: upstream.newId('toolu_01', 22), name: toolName, arguments: args },
        finishReason: 'tool_use',
        promptTokens: inputTokens + cacheRead + cacheCreation,
        completionTokens: countWords(preamble) + 1 + countWords(args),
      };
      if (preamble.length > 0) reply.text = preamble;
    } else {
      let text = results.length > 0 ? `Tool result: ${results.map((r) => textOf(r.content)).join('\n')}` : (settings.text ?? DEFAULT_REPLY);
      let stopReason = 'end_turn';
      let stopSequence: string | undefined;
      const stopped = applyStop(text, stops);
      if (stopped.stop !== undefined) {
        text = stopped.text;
        stopReason = 'stop_sequence';
        stopSequence = stopped.stop;
      }
      if (countWords(text) > body.max_tokens) {
        text = firstWords(text, body.max_tokens);
        stopReason = 'max_tokens';
        stopSequence = undefined;
      }
      reply = {
        stream,
        text,
        finishReason: stopReason,
        promptTokens: inputTokens + cacheRead + cacheCreation,
        completionTokens: countWords(text),
      };
      if (stopSequence !== undefined) reply.stopSequence = stopSequence;
    }
    const stopSequence = reply.stopSequence ?? null;
    const usage = {
      input_tokens: inputTokens,
      cache_creation_input_tokens: cacheCreation,
      cache_read_input_tokens: cacheRead,
      output_tokens: reply.completionTokens,
      service_tier: 'standard',
    };
    if (!settings.omitUsage) reply.usage = usage;
    upstream.setReply(exchange, reply);
    const id = upstream.newId('msg_01', 22);

    const blocks: Array<Record<string, unknown>> = [];
    if (reply.text !== undefined && (reply.text.length > 0 || !reply.toolCall)) blocks.push({ type: 'text', text: reply.text });
    if (reply.toolCall) {
      blocks.push({ type: 'tool_use', id: reply.toolCall.id, name: reply.toolCall.name, input: JSON.parse(reply.toolCall.arguments) });
    }

    if (!stream) {
      upstream.json(exchange, 200, {
        id,
        type: 'message',
        role: 'assistant',
        model,
        content: blocks,
        stop_reason: reply.finishReason,
        stop_sequence: stopSequence,
        ...(settings.omitUsage ? {} : { usage }),
      });
      return;
    }

    const events: StreamEvent[] = [
      {
        kind: 'pre',
        text: sse('message_start', {
          type: 'message_start',
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model,
            content: [],
            stop_reason: null,
            stop_sequence: null,
            ...(settings.omitUsage ? {} : { usage: { ...usage, output_tokens: 1 } }),
          },
        }),
      },
    ];
    let index = 0;
    for (const block of blocks) {
      const kind = index === 0 ? 'pre' : 'post';
      if (block.type === 'text') {
        events.push({ kind, text: sse('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }) });
        if (index === 0) events.push({ kind: 'pre', text: sse('ping', { type: 'ping' }) });
        for (const piece of splitText(block.text as string, settings.chunks)) {
          events.push({
            kind: 'content',
            text: sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: piece } }),
          });
        }
      } else {
        const call = reply.toolCall!;
        events.push({
          kind,
          text: sse('content_block_start', {
            type: 'content_block_start',
            index,
            content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} },
          }),
        });
        if (index === 0) events.push({ kind: 'pre', text: sse('ping', { type: 'ping' }) });
        const delta = (partial: string): string =>
          sse('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: partial } });
        events.push({ kind, text: delta('') });
        const pieces = settings.chunks === undefined ? splitBySize(call.arguments, 8) : splitEvenly(call.arguments, settings.chunks);
        for (const piece of pieces) events.push({ kind: 'content', text: delta(piece) });
      }
      events.push({ kind: 'post', text: sse('content_block_stop', { type: 'content_block_stop', index }) });
      index++;
    }
    events.push({
      kind: 'post',
      text: sse('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: reply.finishReason, stop_sequence: stopSequence },
        ...(settings.omitUsage ? {} : { usage: { output_tokens: reply.completionTokens } }),
      }),
    });
    events.push({ kind: 'post', text: sse('message_stop', { type: 'message_stop' }) });
    upstream.stream(exchange, events);
  }
}

interface Block {
  type: string;
  text?: unknown;
  id?: unknown;
  tool_use_id?: unknown;
  content?: unknown;
}

interface Message {
  role: 'user' | 'assistant';
  content: string | Block[];
}

interface Tool {
  name: string;
  input_schema?: unknown;
}

function validateMessages(value: unknown): Message[] {
  if (value === undefined) throw new InvalidRequest('messages: Field required');
  if (!Array.isArray(value)) throw new InvalidRequest('messages: Input should be a valid list');
  if (value.length === 0) throw new InvalidRequest('messages: at least one message is required');
  value.forEach((message: unknown, i) => {
    if (!isObject(message)) throw new InvalidRequest(`messages.${i}: Input should be a valid dictionary`);
    if (message.role !== 'user' && message.role !== 'assistant') {
      throw new InvalidRequest(`messages.${i}.role: Input should be 'user' or 'assistant'`);
    }
    const content = message.content;
    const isFinalAssistant = i === value.length - 1 && message.role === 'assistant';
    if (typeof content === 'string') {
      if (content.length === 0 && !isFinalAssistant) {
        throw new InvalidRequest(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
      }
      return;
    }
    if (!Array.isArray(content)) throw new InvalidRequest(`messages.${i}.content: Input should be a valid list`);
    if (content.length === 0 && !isFinalAssistant) {
      throw new InvalidRequest(`messages.${i}: all messages must have non-empty content except for the optional final assistant message`);
    }
    content.forEach((block: unknown, j) => validateBlock(block, `messages.${i}.content.${j}`, message.role as string));
  });
  checkToolPairing(value as Message[]);
  return value as Message[];
}

function validateBlock(block: unknown, path: string, role: string): void {
  if (!isObject(block)) throw new InvalidRequest(`${path}: Input should be a valid dictionary`);
  if (typeof block.type !== 'string' || !BLOCK_TYPES.has(block.type)) {
    throw new InvalidRequest(
      `${path}: Input tag '${String(block.type)}' found using 'type' does not match any of the expected tags: ${[...BLOCK_TYPES].map((t) => `'${t}'`).join(', ')}`,
    );
  }
  switch (block.type) {
    case 'text':
      if (typeof block.text !== 'string') throw new InvalidRequest(`${path}.text: Field required`);
      if (block.text.length === 0) throw new InvalidRequest('messages: text content blocks must be non-empty');
      break;
    case 'tool_use':
      if (role !== 'assistant') throw new InvalidRequest(`${path}: tool_use blocks are only allowed in assistant messages`);
      if (typeof block.id !== 'string') throw new InvalidRequest(`${path}.id: Field required`);
      if (typeof block.name !== 'string') throw new InvalidRequest(`${path}.name: Field required`);
      if (!isObject(block.input)) throw new InvalidRequest(`${path}.input: Input should be a valid dictionary`);
      break;
    case 'tool_result':
      if (role !== 'user') throw new InvalidRequest(`${path}: tool_result blocks are only allowed in user messages`);
      if (typeof block.tool_use_id !== 'string') throw new InvalidRequest(`${path}.tool_use_id: Field required`);
      if (block.content !== undefined && typeof block.content !== 'string' && !Array.isArray(block.content)) {
        throw new InvalidRequest(`${path}.content: Input should be a valid string or list`);
      }
      break;
    case 'image':
      if (!isObject(block.source)) throw new InvalidRequest(`${path}.source: Field required`);
      break;
  }
}

/**
 * Every tool_use must be answered by a tool_result at the start of the very next message, and
 * every tool_result must answer a tool_use of the message just before, as the real API demands.
 */
function checkToolPairing(messages: Message[]): void {
  messages.forEach((message, i) => {
    const blocks = Array.isArray(message.content) ? message.content : [];
    const previous = messages[i - 1];
    const previousUses = new Set(
      previous && Array.isArray(previous.content) ? previous.content.filter((b) => b.type === 'tool_use').map((b) => b.id as string) : [],
    );
    blocks.forEach((block, j) => {
      if (block.type === 'tool_result' && !previousUses.has(block.tool_use_id as string)) {
        throw new InvalidRequest(
          `messages.${i}.content.${j}: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(block.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`,
        );
      }
    });
    const uses = blocks.filter((b) => b.type === 'tool_use').map((b) => b.id as string);
    const next = messages[i + 1];
    if (uses.length === 0 || !next) return;
    const answered = new Set<string>();
    if (Array.isArray(next.content)) {
      for (const block of next.content) {
        if (block.type !== 'tool_result') break;
        answered.add(block.tool_use_id as string);
      }
    }
    const missing = uses.filter((id) => !answered.has(id));
    if (missing.length > 0) {
      throw new InvalidRequest(
        `messages.${i + 1}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`,
      );
    }
  });
}

function validateSystem(system: unknown): void {
  if (system === undefined || typeof system === 'string') return;
  if (!Array.isArray(system)) throw new InvalidRequest('system: Input should be a valid string or list');
  system.forEach((block: unknown, i) => {
    if (!isObject(block) || block.type !== 'text' || typeof block.text !== 'string') {
      throw new InvalidRequest(`system.${i}: Input should be a valid text block`);
    }
    if (block.text.length === 0) throw new InvalidRequest('system: text content blocks must be non-empty');
  });
}

function validateSampling(body: Record<string, unknown>): void {
  const ranges: Array<[string, number, number]> = [
    ['temperature', 0, 1],
    ['top_p', 0, 1],
  ];
  for (const [field, min, max] of ranges) {
    const value = body[field];
    if (value === undefined) continue;
    if (typeof value !== 'number') throw new InvalidRequest(`${field}: Input should be a valid number`);
    if (value < min || value > max) throw new InvalidRequest(`${field}: range: ${min}..${max}`);
  }
  if (body.top_k !== undefined && (typeof body.top_k !== 'number' || !Number.isInteger(body.top_k) || body.top_k < 0)) {
    throw new InvalidRequest('top_k: Input should be a valid integer');
  }
  if (body.metadata !== undefined) {
    if (!isObject(body.metadata)) throw new InvalidRequest('metadata: Input should be a valid dictionary');
    for (const field of Object.keys(body.metadata)) {
      if (field !== 'user_id') throw new InvalidRequest(`metadata.${field}: Extra inputs are not permitted`);
    }
  }
}

function validateStops(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((s) => typeof s !== 'string')) throw new InvalidRequest('stop_sequences: Input should be a valid list of strings');
  return value as string[];
}

function validateTools(value: unknown): Tool[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new InvalidRequest('tools: Input should be a valid list');
  value.forEach((tool: unknown, i) => {
    if (!isObject(tool)) throw new InvalidRequest(`tools.${i}: Input should be a valid dictionary`);
    if (tool.type !== undefined && tool.type !== 'custom') {
      // Server tools (web_search_…, bash_…) carry a dated type; OpenAI's `function` is not one.
      if (typeof tool.type === 'string' && /_\d{8}$/.test(tool.type)) return;
      throw new InvalidRequest(`tools.${i}: Input tag '${String(tool.type)}' found using 'type' does not match any of the expected tags`);
    }
    if (typeof tool.name !== 'string') throw new InvalidRequest(`tools.${i}.name: Field required`);
    if (!TOOL_NAME.test(tool.name)) throw new InvalidRequest(`tools.${i}.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'`);
    if (!isObject(tool.input_schema)) throw new InvalidRequest(`tools.${i}.input_schema: Field required`);
  });
  return value as Tool[];
}

function validateToolChoice(value: unknown): void {
  if (value === undefined) return;
  if (!isObject(value)) throw new InvalidRequest('tool_choice: Input should be a valid dictionary or object to extract fields from');
  if (!['auto', 'any', 'tool', 'none'].includes(value.type as string)) {
    throw new InvalidRequest(`tool_choice: Input tag '${String(value.type)}' found using 'type' does not match any of the expected tags: 'auto', 'any', 'tool', 'none'`);
  }
  if (value.type === 'tool' && typeof value.name !== 'string') throw new InvalidRequest('tool_choice.tool.name: Field required');
}

function chosenTool(tools: Tool[], choice: unknown): string | undefined {
  const custom = tools.filter((t) => typeof t.name === 'string' && isObject(t.input_schema));
  if (custom.length === 0) return undefined;
  if (isObject(choice)) {
    if (choice.type === 'none') return undefined;
    if (choice.type === 'tool') return choice.name as string;
  }
  return custom[0]!.name;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((block: unknown) => (isObject(block) && block.type === 'text' && typeof block.text === 'string' ? block.text : ''))
    .filter((text) => text.length > 0)
    .join('\n');
}

/** Starts a fake Anthropic upstream; its `url` has no `/v1`, as an Anthropic `base_url` has none. */
export function startAnthropicUpstream(options: UpstreamSettings = {}): Promise<FakeUpstream> {
  return new FakeUpstream(new AnthropicDialect(), options).listen();
}
