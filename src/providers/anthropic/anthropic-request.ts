import type { ChatMessage, ChatRequest, ContentPart, ToolChoice, ToolDefinition } from '../openai-types';
import { UpstreamError } from '../upstream-error';
import type {
  AnthropicContentBlock,
  AnthropicImageBlock,
  AnthropicMessage,
  AnthropicRequest,
  AnthropicTool,
  AnthropicToolChoice,
} from './anthropic-types';

/**
 * Anthropic requires the first turn to be the user's; a conversation that opens with an
 * assistant turn gets this minimal user turn in front (the choice langchain4j and others made),
 * so the assistant's words still reach the model instead of being dropped.
 */
export const OPENING_USER_TEXT = '.';

/** Anthropic's limit on `metadata.user_id`. */
const MAX_USER_ID_LENGTH = 256;

const DEFAULT_INPUT_SCHEMA: Record<string, unknown> = { type: 'object', properties: {} };

/**
 * Builds the Anthropic Messages body from an OpenAI chat request. Only fields Anthropic knows
 * are written: it rejects unknown ones, so everything else the client sent is left behind.
 * Throws UpstreamError('client', …, 400) for content Anthropic cannot take (audio, files), so
 * the client gets a 400 rather than an answer to a prompt with parts silently missing.
 */
export function toAnthropicRequest(body: ChatRequest, defaultMaxTokens: number): AnthropicRequest {
  const system: string[] = [];
  const messages: AnthropicMessage[] = [];

  body.messages.forEach((message, i) => {
    switch (message.role) {
      case 'system':
      case 'developer': {
        const text = textOf(message.content);
        if (text) system.push(text);
        break;
      }
      case 'user':
        appendTurn(messages, 'user', userBlocks(message, i));
        break;
      case 'assistant':
        appendTurn(messages, 'assistant', assistantBlocks(message));
        break;
      case 'tool':
        appendTurn(messages, 'user', [toolResultBlock(message)]);
        break;
    }
  });

  for (const turn of messages) if (turn.role === 'user') putToolResultsFirst(turn);
  if (messages[0]?.role === 'assistant') {
    messages.unshift({ role: 'user', content: [{ type: 'text', text: OPENING_USER_TEXT }] });
  }

  const request: AnthropicRequest = {
    model: body.model,
    messages,
    max_tokens: body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens,
  };
  if (system.length > 0) request.system = system.join('\n\n');
  // OpenAI allows 0–2, Anthropic 0–1: clamp rather than fail a request the client wrote correctly.
  if (typeof body.temperature === 'number') request.temperature = Math.min(1, body.temperature);
  if (typeof body.top_p === 'number') request.top_p = body.top_p;
  const stop = stopSequences(body.stop);
  if (stop.length > 0) request.stop_sequences = stop;
  if (typeof body.stream === 'boolean') request.stream = body.stream;

  const tools = (body.tools ?? []).filter(isFunctionTool).map(toAnthropicTool);
  if (tools.length > 0) {
    request.tools = tools;
    const choice = toAnthropicToolChoice(body.tool_choice, body.parallel_tool_calls);
    if (choice) request.tool_choice = choice;
  }

  if (typeof body.user === 'string' && body.user.length > 0) {
    request.metadata = { user_id: body.user.slice(0, MAX_USER_ID_LENGTH) };
  }
  return request;
}

/** Anthropic wants strictly alternating turns: consecutive same-role messages become one turn. */
function appendTurn(messages: AnthropicMessage[], role: 'user' | 'assistant', blocks: AnthropicContentBlock[]): void {
  if (blocks.length === 0) return;
  const last = messages[messages.length - 1];
  if (last?.role === role) last.content.push(...blocks);
  else messages.push({ role, content: blocks });
}

/** Anthropic rejects a user turn whose tool_result blocks come after other content. */
function putToolResultsFirst(turn: AnthropicMessage): void {
  const results = turn.content.filter((block) => block.type === 'tool_result');
  if (results.length === 0 || results.length === turn.content.length) return;
  turn.content = [...results, ...turn.content.filter((block) => block.type !== 'tool_result')];
}

/** The text of a string or of the text parts of an array; other parts are ignored. */
function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((part): part is { type: 'text'; text: string } => part.type === 'text' && typeof part.text === 'string')
    .map((part) => part.text)
    .join('\n\n');
}

function userBlocks(message: ChatMessage, messageIndex: number): AnthropicContentBlock[] {
  const { content } = message;
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : [];
  if (!Array.isArray(content)) return [];
  const blocks: AnthropicContentBlock[] = [];
  content.forEach((part, partIndex) => {
    if (part.type === 'text' && typeof part.text === 'string') {
      // Anthropic rejects empty text blocks; an empty part carries nothing anyway.
      if (part.text) blocks.push({ type: 'text', text: part.text });
    } else if (part.type === 'image_url' && typeof imageUrlOf(part) === 'string') {
      blocks.push(imageBlock(imageUrlOf(part) as string));
    } else {
      const type = String(part.type).slice(0, 40);
      throw new UpstreamError(
        'client',
        `messages[${messageIndex}].content[${partIndex}]: content parts of type '${type}' are not supported by this model's provider.`,
        400,
      );
    }
  });
  return blocks;
}

function imageUrlOf(part: ContentPart): unknown {
  const imageUrl = (part as { image_url?: unknown }).image_url;
  return imageUrl && typeof imageUrl === 'object' ? (imageUrl as { url?: unknown }).url : undefined;
}

/**
 * `data:<media type>[;base64],<data>` becomes a base64 source (percent-encoded data is
 * re-encoded); any other URL is handed to Anthropic as a URL source, and Anthropic answers 400
 * for schemes it cannot fetch.
 */
function imageBlock(url: string): AnthropicImageBlock {
  if (url.startsWith('data:')) {
    const comma = url.indexOf(',');
    if (comma > 0) {
      const [mediaType, ...params] = url.slice(5, comma).split(';');
      const payload = url.slice(comma + 1);
      const data = params.some((param) => param.toLowerCase() === 'base64') ? payload : reencodeBase64(payload);
      return { type: 'image', source: { type: 'base64', media_type: mediaType.toLowerCase(), data } };
    }
  }
  return { type: 'image', source: { type: 'url', url } };
}

function reencodeBase64(percentEncoded: string): string {
  let decoded: string;
  try {
    decoded = decodeURIComponent(percentEncoded);
  } catch {
    decoded = percentEncoded;
  }
  return Buffer.from(decoded, 'utf8').toString('base64');
}

function assistantBlocks(message: ChatMessage): AnthropicContentBlock[] {
  const blocks: AnthropicContentBlock[] = [];
  const text = textOf(message.content);
  if (text) blocks.push({ type: 'text', text });
  for (const call of message.tool_calls ?? []) {
    blocks.push({
      type: 'tool_use',
      id: toolUseId(call.id),
      name: call.function?.name ?? '',
      input: parseArguments(call.function?.arguments),
    });
  }
  return blocks;
}

/**
 * Anthropic needs `input` to be an object. Models do emit truncated or invalid arguments
 * (a call cut by max_tokens, say); sending `{}` keeps the conversation usable instead of
 * failing every later turn of it with a 400 the client cannot fix.
 */
export function parseArguments(args: unknown): Record<string, unknown> {
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const parsed: unknown = JSON.parse(args);
    return parsed && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Anthropic tool ids must match [a-zA-Z0-9_-]+; ids minted elsewhere may not, so both ends are mapped alike. */
function toolUseId(id: unknown): string {
  const text = typeof id === 'string' && id ? id : 'call';
  return text.replace(/[^a-zA-Z0-9_-]/g, '_');
}

function toolResultBlock(message: ChatMessage): AnthropicContentBlock {
  const text = textOf(message.content);
  const block: AnthropicContentBlock = { type: 'tool_result', tool_use_id: toolUseId(message.tool_call_id) };
  if (text) block.content = text;
  return block;
}

function stopSequences(stop: ChatRequest['stop']): string[] {
  const list = typeof stop === 'string' ? [stop] : Array.isArray(stop) ? stop : [];
  return list.filter((item): item is string => typeof item === 'string' && item.length > 0);
}

function isFunctionTool(tool: ToolDefinition): boolean {
  return tool?.type === 'function' && typeof tool.function?.name === 'string';
}

function toAnthropicTool(tool: ToolDefinition): AnthropicTool {
  const { name, description, parameters } = tool.function;
  const result: AnthropicTool = { name, input_schema: inputSchema(parameters) };
  if (typeof description === 'string' && description) result.description = description;
  return result;
}

/** Anthropic requires a JSON schema of type object; OpenAI lets clients omit it or its type. */
function inputSchema(parameters: unknown): Record<string, unknown> {
  if (!parameters || typeof parameters !== 'object' || Array.isArray(parameters)) return { ...DEFAULT_INPUT_SCHEMA };
  const schema = parameters as Record<string, unknown>;
  return 'type' in schema ? schema : { type: 'object', ...schema };
}

/**
 * Maps tool_choice; `parallel_tool_calls: false` becomes `disable_parallel_tool_use` on it
 * (on `auto` when the client chose nothing). `none` cannot carry that flag, and nothing is sent
 * when the request has no tools, since Anthropic refuses tool_choice without tools.
 */
export function toAnthropicToolChoice(
  choice: ToolChoice | undefined,
  parallelToolCalls: boolean | undefined,
): AnthropicToolChoice | undefined {
  let mapped: AnthropicToolChoice | undefined;
  if (choice === 'auto') mapped = { type: 'auto' };
  else if (choice === 'none') mapped = { type: 'none' };
  else if (choice === 'required') mapped = { type: 'any' };
  else if (choice && typeof choice === 'object' && typeof choice.function?.name === 'string') {
    mapped = { type: 'tool', name: choice.function.name };
  }
  if (parallelToolCalls === false) {
    mapped ??= { type: 'auto' };
    if (mapped.type !== 'none') mapped.disable_parallel_tool_use = true;
  }
  return mapped;
}
