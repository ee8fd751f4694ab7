import { GatewayError } from '../common/gateway-error';
import type { ChatRequest } from '../providers/openai-types';

/*
 * Validation of POST /v1/chat/completions (DESIGN §3.2): the known fields' JSON types and ranges,
 * each failure a 400 `invalid_value` naming its path. Hand-written rather than class-validator
 * because it runs on every request (it costs a few microseconds this way) and because content
 * unions (string | parts | null-with-tool-calls) are clearer as code. Unknown fields are left
 * alone: they travel to the upstream unchanged.
 */

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);
const TOOL_CHOICES = new Set(['none', 'auto', 'required']);

type Json = Record<string, unknown>;

export function validateChatRequest(body: Json): ChatRequest {
  if (typeof body.model !== 'string' || body.model.length === 0) fail('model', 'model must be a non-empty string');
  checkMessages(body.messages);
  optionalNumber(body, 'temperature', 0, 2);
  optionalNumber(body, 'top_p', 0, 1);
  optionalNumber(body, 'presence_penalty', -2, 2);
  optionalNumber(body, 'frequency_penalty', -2, 2);
  optionalInteger(body, 'max_tokens', 1);
  optionalInteger(body, 'max_completion_tokens', 1);
  optionalInteger(body, 'n', 1, 128);
  optionalBoolean(body, 'stream');
  optionalBoolean(body, 'parallel_tool_calls');
  if (body.user != null && typeof body.user !== 'string') fail('user', 'user must be a string');
  checkStop(body.stop);
  checkStreamOptions(body.stream_options, body.stream === true);
  checkTools(body.tools);
  checkToolChoice(body.tool_choice);
  return body as unknown as ChatRequest;
}

function checkMessages(messages: unknown): void {
  if (!Array.isArray(messages)) fail('messages', 'messages must be an array');
  if (messages.length === 0) fail('messages', 'messages must not be empty');
  messages.forEach((message: unknown, i) => {
    const at = `messages[${i}]`;
    if (!isObject(message)) fail(at, `${at} must be an object`);
    if (typeof message.role !== 'string' || !ROLES.has(message.role)) {
      fail(`${at}.role`, `${at}.role must be one of: system, developer, user, assistant, tool`);
    }
    const hasToolCalls = message.role === 'assistant' && (message.tool_calls != null || message.function_call != null);
    if (message.role === 'assistant' && message.tool_calls != null) checkToolCalls(message.tool_calls, `${at}.tool_calls`);
    checkContent(message.content, `${at}.content`, hasToolCalls);
    if (message.role === 'tool' && typeof message.tool_call_id !== 'string') {
      fail(`${at}.tool_call_id`, `${at}.tool_call_id must be a string`);
    }
    if (message.name != null && typeof message.name !== 'string') fail(`${at}.name`, `${at}.name must be a string`);
  });
}

/** A string, an array of parts, or null (only on an assistant message with tool calls). */
function checkContent(content: unknown, at: string, nullable: boolean): void {
  if (typeof content === 'string') return;
  if (content == null) {
    if (nullable) return;
    fail(at, `${at} must be a string or an array of content parts`);
  }
  if (!Array.isArray(content)) fail(at, `${at} must be a string or an array of content parts`);
  content.forEach((part: unknown, j) => {
    const partAt = `${at}[${j}]`;
    if (!isObject(part) || typeof part.type !== 'string') fail(`${partAt}.type`, `${partAt}.type must be a string`);
    if (part.type === 'text' && typeof part.text !== 'string') fail(`${partAt}.text`, `${partAt}.text must be a string`);
    if (part.type === 'image_url' && !(isObject(part.image_url) && typeof part.image_url.url === 'string')) {
      fail(`${partAt}.image_url.url`, `${partAt}.image_url.url must be a string`);
    }
  });
}

function checkToolCalls(calls: unknown, at: string): void {
  if (!Array.isArray(calls)) fail(at, `${at} must be an array`);
  calls.forEach((call: unknown, k) => {
    const callAt = `${at}[${k}]`;
    if (!isObject(call)) fail(callAt, `${callAt} must be an object`);
    if (typeof call.id !== 'string') fail(`${callAt}.id`, `${callAt}.id must be a string`);
    if (call.type !== 'function') fail(`${callAt}.type`, `${callAt}.type must be "function"`);
    if (!isObject(call.function) || typeof call.function.name !== 'string') fail(`${callAt}.function.name`, `${callAt}.function.name must be a string`);
    if (typeof call.function.arguments !== 'string') fail(`${callAt}.function.arguments`, `${callAt}.function.arguments must be a string`);
  });
}

function checkTools(tools: unknown): void {
  if (tools == null) return;
  if (!Array.isArray(tools)) fail('tools', 'tools must be an array');
  tools.forEach((tool: unknown, i) => {
    const at = `tools[${i}]`;
    if (!isObject(tool) || tool.type !== 'function') fail(`${at}.type`, `${at}.type must be "function"`);
    if (!isObject(tool.function)) fail(`${at}.function`, `${at}.function must be an object`);
    const fn = tool.function;
    if (typeof fn.name !== 'string' || fn.name.length === 0) fail(`${at}.function.name`, `${at}.function.name must be a non-empty string`);
    if (fn.description != null && typeof fn.description !== 'string') fail(`${at}.function.description`, `${at}.function.description must be a string`);
    if (fn.parameters != null && !isObject(fn.parameters)) fail(`${at}.function.parameters`, `${at}.function.parameters must be an object`);
  });
}

function checkToolChoice(choice: unknown): void {
  if (choice == null || (typeof choice === 'string' && TOOL_CHOICES.has(choice))) return;
  if (isObject(choice) && choice.type === 'function' && isObject(choice.function) && typeof choice.function.name === 'string') return;
  fail('tool_choice', 'tool_choice must be "none", "auto", "required" or {"type":"function","function":{"name":…}}');
}

function checkStop(stop: unknown): void {
  if (stop == null || typeof stop === 'string') return;
  if (Array.isArray(stop) && stop.length <= 4 && stop.every((s) => typeof s === 'string')) return;
  fail('stop', 'stop must be a string or an array of at most 4 strings');
}

function checkStreamOptions(options: unknown, streaming: boolean): void {
  if (options == null) return;
  if (!isObject(options)) fail('stream_options', 'stream_options must be an object');
  if (!streaming) fail('stream_options', 'stream_options is only allowed when stream is true');
  if (options.include_usage != null && typeof options.include_usage !== 'boolean') {
    fail('stream_options.include_usage', 'stream_options.include_usage must be a boolean');
  }
}

function optionalNumber(body: Json, field: string, min: number, max: number): void {
  const value = body[field];
  if (value == null) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    fail(field, `${field} must be a number from ${min} to ${max}`);
  }
}

function optionalInteger(body: Json, field: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  const value = body[field];
  if (value == null) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `${field} must be an integer from ${min}${max === Number.MAX_SAFE_INTEGER ? ' up' : ` to ${max}`}`);
  }
}

function optionalBoolean(body: Json, field: string): void {
  const value = body[field];
  if (value != null && typeof value !== 'boolean') fail(field, `${field} must be a boolean`);
}

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function fail(param: string, message: string): never {
  throw GatewayError.invalidValue(param, message);
}
