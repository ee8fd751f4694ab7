/*
 * A fake OpenAI Chat Completions upstream speaking the real wire format, streaming included:
 * `POST …/v1/chat/completions`, `GET …/v1/models`, OpenAI's error envelope and its validation
 * of the few things a gateway could get wrong when forwarding (messages, tool turns,
 * stream_options without stream).
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

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);
const FINGERPRINT = 'fp_fake0001';
const DEFAULT_MODELS = ['gpt-4o-mini', 'gpt-4o'];

interface OpenAIError {
  error: { message: string; type: string; param: string | null; code: string | null };
}

class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly status = 400,
  ) {
    super(message);
  }
}

function openAIError(message: string, type: string, param: string | null = null, code: string | null = null): OpenAIError {
  return { error: { message, type, param, code } };
}

export class OpenAIDialect implements UpstreamDialect {
  readonly basePath = '/v1';

  isCompletion(method: string, pathname: string): boolean {
    return method === 'POST' && pathname.endsWith('/v1/chat/completions');
  }

  responseHeaders(upstream: FakeUpstream): OutgoingHttpHeaders {
    return { 'x-request-id': upstream.newId('req_', 32), 'openai-processing-ms': '1' };
  }

  errorBody(status: number, message?: string): OpenAIError {
    switch (status) {
      case 400:
        return openAIError(message ?? 'Invalid request.', 'invalid_request_error');
      case 401:
        return openAIError(message ?? 'Incorrect API key provided.', 'invalid_request_error', null, 'invalid_api_key');
      case 403:
        return openAIError(message ?? 'You are not allowed to sample from this model.', 'invalid_request_error');
      case 404:
        return openAIError(message ?? 'The model does not exist or you do not have access to it.', 'invalid_request_error', null, 'model_not_found');
      case 413:
        return openAIError(message ?? 'Request too large.', 'invalid_request_error');
      case 429:
        return openAIError(
          message ?? 'Rate limit reached for requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.',
          'requests',
          null,
          'rate_limit_exceeded',
        );
      case 503:
        return openAIError(message ?? 'The engine is currently overloaded, please try again later', 'server_error');
      default:
        return status >= 500
          ? openAIError(message ?? 'The server had an error while processing your request. Sorry about that!', 'server_error')
          : openAIError(message ?? 'Invalid request.', 'invalid_request_error');
    }
  }

  streamErrorEvent(error: UpstreamStreamError): string {
    const body = openAIError(
      error.message ?? 'The server had an error while processing your request. Sorry about that!',
      error.type ?? 'server_error',
    );
    return `data: ${JSON.stringify(body)}\n\n`;
  }

  handle(exchange: Exchange, upstream: FakeUpstream): void {
    const { method, pathname } = exchange;
    const isModels = pathname.endsWith('/v1/models');
    const isCompletion = this.isCompletion(method, pathname);
    if (!isModels && !isCompletion) {
      upstream.json(exchange, 404, openAIError(`Invalid URL (${method} ${pathname})`, 'invalid_request_error'));
      return;
    }
    if (!this.authorized(exchange, upstream)) return;
    if (isModels) {
      if (method !== 'GET') {
        upstream.json(exchange, 405, openAIError(`Method ${method} not allowed.`, 'invalid_request_error'));
        return;
      }
      const created = Math.floor(Date.now() / 1000);
      const ids = exchange.behaviour.models ?? DEFAULT_MODELS;
      upstream.json(exchange, 200, {
        object: 'list',
        data: ids.map((id) => ({ id, object: 'model', created, owned_by: 'openai' })),
      });
      return;
    }
    try {
      this.complete(exchange, upstream);
    } catch (err) {
      if (!(err instanceof InvalidRequest)) throw err;
      upstream.json(exchange, err.status, openAIError(err.message, 'invalid_request_error', err.param, err.code));
    }
  }

  private authorized(exchange: Exchange, upstream: FakeUpstream): boolean {
    const header = exchange.headers.authorization;
    const key = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (key.length === 0) {
      upstream.json(
        exchange,
        401,
        openAIError(
          "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
          'invalid_request_error',
        ),
      );
      return false;
    }
    const expected = exchange.behaviour.apiKey;
    if (expected !== undefined && key !== expected) {
      const masked = key.length > 8 ? `${key.slice(0, 3)}${'*'.repeat(Math.min(key.length - 7, 20))}${key.slice(-4)}` : '***';
      upstream.json(
        exchange,
        401,
        openAIError(`Incorrect API key provided: ${masked}.`, 'invalid_request_error', null, 'invalid_api_key'),
      );
      return false;
    }
    return true;
  }

  private complete(exchange: Exchange, upstream: FakeUpstream): void {
    if (!exchange.bodyIsJson || !isObject(exchange.body)) {
      throw new InvalidRequest(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
      );
    }
    const body = exchange.body;
    const settings = exchange.behaviour;
    if (typeof body.model !== 'string' || body.model.length === 0) {
      throw new InvalidRequest('you must provide a model parameter');
    }
    const messages = validateMessages(body.messages);
    if (body.stream_options !== undefined && body.stream_options !== null && body.stream !== true) {
      throw new InvalidRequest(
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        'stream_options',
        'invalid_value',
      );
    }
    const tools = validateTools(body.tools);
    if (settings.models && !settings.models.includes(body.model)) {
      throw new InvalidRequest(
        `The model \`${body.model}\` does not exist or you do not have access to it.`,
        null,
        'model_not_found',
        404,
      );
    }

    const model = body.model;
    const stream = body.stream === true;
    const promptTokens = countPromptWords(messages);
    const last = messages[messages.length - 1]!;
    const toolName = last.role === 'tool' ? undefined : chosenTool(tools, body.tool_choice);

    let reply: UpstreamReply;
    if (toolName !== undefined) {
      const tool = tools.find((t) => t.function.name === toolName);
      const args = JSON.stringify(settings.toolArguments ?? sampleArguments(tool?.function.parameters));
      reply = {
        stream,
        toolCall: { id: upstream.newId('call_', 24), name: toolName, arguments: args },
        finishReason: 'tool_calls',
        promptTokens,
        completionTokens: 1 + countWords(args),
      };
    } else {
      let text = last.role === 'tool' ? `Tool result: ${textOf(last.content)}` : (settings.text ?? DEFAULT_REPLY);
      let finishReason = 'stop';
      const stops = typeof body.stop === 'string' ? [body.stop] : Array.isArray(body.stop) ? body.stop.filter((s) => typeof s === 'string') : [];
      text = applyStop(text, stops).text;
      const limit = body.max_completion_tokens ?? body.max_tokens;
      if (typeof limit === 'number' && countWords(text) > limit) {
        text = firstWords(text, limit);
        finishReason = 'length';
      }
      reply = { stream, text, finishReason, promptTokens, completionTokens: countWords(text) };
    }

    const usage = {
      prompt_tokens: reply.promptTokens,
      completion_tokens: reply.completionTokens,
      total_tokens: reply.promptTokens + reply.completionTokens,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: {
        reasoning_tokens: 0,
        audio_tokens: 0,
        accepted_prediction_tokens: 0,
        rejected_prediction_tokens: 0,
      },
    };
    const id = upstream.newId('chatcmpl-', 29);
    const created = Math.floor(Date.now() / 1000);

    if (!stream) {
      if (!settings.omitUsage) reply.usage = usage;
      upstream.setReply(exchange, reply);
      const message = reply.toolCall
        ? {
            role: 'assistant',
            content: null,
            tool_calls: [
              { id: reply.toolCall.id, type: 'function', function: { name: reply.toolCall.name, arguments: reply.toolCall.arguments } },
            ],
            refusal: null,
            annotations: [],
          }
        : { role: 'assistant', content: reply.text, refusal: null, annotations: [] };
      upstream.json(exchange, 200, {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: [{ index: 0, message, logprobs: null, finish_reason: reply.finishReason }],
        ...(settings.omitUsage ? {} : { usage }),
        service_tier: 'default',
        system_fingerprint: FINGERPRINT,
      });
      return;
    }

    const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
    if (includeUsage && !settings.omitUsage) reply.usage = usage;
    upstream.setReply(exchange, reply);
    // With include_usage every chunk carries `usage: null`, as OpenAI sends it.
    const head = { id, object: 'chat.completion.chunk', created, model, service_tier: 'default', system_fingerprint: FINGERPRINT };
    const chunk = (delta: unknown, finishReason: string | null = null): string =>
      `data: ${JSON.stringify({
        ...head,
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
        ...(includeUsage ? { usage: null } : {}),
      })}\n\n`;

    const events: StreamEvent[] = [];
    if (reply.toolCall) {
      const call = reply.toolCall;
      events.push({
        kind: 'pre',
        text: chunk({
          role: 'assistant',
          content: null,
          tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }],
          refusal: null,
        }),
      });
      const pieces = settings.chunks === undefined ? splitBySize(call.arguments, 8) : splitEvenly(call.arguments, settings.chunks);
      for (const piece of pieces) {
        events.push({ kind: 'content', text: chunk({ tool_calls: [{ index: 0, function: { arguments: piece } }] }) });
      }
    } else {
      events.push({ kind: 'pre', text: chunk({ role: 'assistant', content: '', refusal: null }) });
      for (const piece of splitText(reply.text!, settings.chunks)) {
        events.push({ kind: 'content', text: chunk({ content: piece }) });
      }
    }
    events.push({ kind: 'post', text: chunk({}, reply.finishReason) });
    if (includeUsage && !settings.omitUsage) {
      events.push({ kind: 'post', text: `data: ${JSON.stringify({ ...head, choices: [], usage })}\n\n` });
    }
    events.push({ kind: 'post', text: 'data: [DONE]\n\n' });
    upstream.stream(exchange, events);
  }
}

interface Message {
  role: string;
  content: unknown;
  tool_call_id?: unknown;
  tool_calls?: unknown;
}

interface FunctionTool {
  type: 'function';
  function: { name: string; parameters?: unknown };
}

function validateMessages(value: unknown): Message[] {
  if (value === undefined) throw new InvalidRequest("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
  if (!Array.isArray(value)) {
    throw new InvalidRequest(`Invalid type for 'messages': expected an array, but got ${typeName(value)} instead.`, 'messages', 'invalid_type');
  }
  if (value.length === 0) {
    throw new InvalidRequest(
      "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
      'messages',
      'empty_array',
    );
  }
  const pending = new Set<string>();
  let pendingFrom = -1;
  value.forEach((message: unknown, i) => {
    if (!isObject(message)) {
      throw new InvalidRequest(`Invalid type for 'messages[${i}]': expected an object, but got ${typeName(message)} instead.`, `messages[${i}]`, 'invalid_type');
    }
    if (typeof message.role !== 'string') throw new InvalidRequest(`Missing required parameter: 'messages[${i}].role'.`, `messages[${i}].role`, 'missing_required_parameter');
    if (!ROLES.has(message.role)) {
      throw new InvalidRequest(
        `Invalid value: '${message.role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'.`,
        `messages[${i}].role`,
        'invalid_value',
      );
    }
    if (message.role === 'tool') {
      if (typeof message.tool_call_id !== 'string') {
        throw new InvalidRequest(`Missing required parameter: 'messages[${i}].tool_call_id'.`, `messages[${i}].tool_call_id`, 'missing_required_parameter');
      }
      if (!pending.delete(message.tool_call_id)) {
        throw new InvalidRequest(
          "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.",
          `messages.[${i}].role`,
        );
      }
      return;
    }
    if (pending.size > 0) throw unanswered(pending, pendingFrom);
    if (message.role === 'assistant' && Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) {
        if (isObject(call) && typeof call.id === 'string') pending.add(call.id);
      }
      pendingFrom = i;
    }
  });
  if (pending.size > 0) throw unanswered(pending, pendingFrom);
  return value as Message[];
}

function unanswered(pending: Set<string>, at: number): InvalidRequest {
  return new InvalidRequest(
    `An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: ${[...pending].join(', ')}`,
    `messages.[${at}].role`,
  );
}

function validateTools(value: unknown): FunctionTool[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new InvalidRequest(`Invalid type for 'tools': expected an array, but got ${typeName(value)} instead.`, 'tools', 'invalid_type');
  value.forEach((tool: unknown, i) => {
    if (!isObject(tool) || !isObject(tool.function) || typeof tool.function.name !== 'string') {
      throw new InvalidRequest(`Missing required parameter: 'tools[${i}].function.name'.`, `tools[${i}].function.name`, 'missing_required_parameter');
    }
  });
  return value as FunctionTool[];
}

function chosenTool(tools: FunctionTool[], choice: unknown): string | undefined {
  if (tools.length === 0 || choice === 'none') return undefined;
  if (isObject(choice) && isObject(choice.function) && typeof choice.function.name === 'string') return choice.function.name;
  return tools[0]!.function.name;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((part: unknown) => (isObject(part) && typeof part.text === 'string' ? part.text : ''))
    .filter((text) => text.length > 0)
    .join('\n');
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Starts a fake OpenAI upstream; its `url` includes `/v1`, as an OpenAI `base_url` does. */
export function startOpenAIUpstream(options: UpstreamSettings = {}): Promise<FakeUpstream> {
  return new FakeUpstream(new OpenAIDialect(), options).listen();
}
