/*
 * The Anthropic Messages API wire shapes (anthropic-version 2023-06-01) the gateway writes or
 * reads. Requests are typed exactly, because Anthropic rejects unknown fields; responses and
 * events only as far as the translation reads them.
 */

export interface AnthropicTextBlock {
  type: 'text';
  text: string;
}

export type AnthropicImageSource =
  | { type: 'base64'; media_type: string; data: string }
  | { type: 'url'; url: string };

export interface AnthropicImageBlock {
  type: 'image';
  source: AnthropicImageSource;
}

export interface AnthropicToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export interface AnthropicToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content?: string;
}

export type AnthropicContentBlock =
  | AnthropicTextBlock
  | AnthropicImageBlock
  | AnthropicToolUseBlock
  | AnthropicToolResultBlock;

export interface AnthropicMessage {
  role: 'user' | 'assistant';
  content: AnthropicContentBlock[];
}

export interface AnthropicTool {
  name: string;
  description?: string;
  input_schema: Record<string, unknown>;
}

export type AnthropicToolChoice =
  | { type: 'auto'; disable_parallel_tool_use?: boolean }
  | { type: 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' };

export interface AnthropicRequest {
  model: string;
  messages: AnthropicMessage[];
  max_tokens: number;
  system?: string;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  stream?: boolean;
  tools?: AnthropicTool[];
  tool_choice?: AnthropicToolChoice;
  metadata?: { user_id: string };
}

export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  [extra: string]: unknown;
}

/** A response content block; kinds the gateway does not translate (thinking, server tools) stay opaque. */
export type AnthropicResponseBlock =
  | AnthropicTextBlock
  | AnthropicToolUseBlock
  | { type: string; [extra: string]: unknown };

export interface AnthropicResponse {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: AnthropicResponseBlock[];
  stop_reason: string | null;
  stop_sequence?: string | null;
  usage: AnthropicUsage;
  [extra: string]: unknown;
}

/** `{type: 'error', error: {type, message}}`, the body of every Anthropic error. */
export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
}

/** One parsed SSE event: `event` is the SSE event name, `data` its JSON-parsed payload. */
export interface AnthropicStreamEvent {
  event: string;
  data: unknown;
}

export interface MessageStartData {
  type: 'message_start';
  message: Omit<AnthropicResponse, 'content'> & { content?: AnthropicResponseBlock[] };
}

export interface ContentBlockStartData {
  type: 'content_block_start';
  index: number;
  content_block: AnthropicResponseBlock;
}

export interface ContentBlockDeltaData {
  type: 'content_block_delta';
  index: number;
  delta:
    | { type: 'text_delta'; text: string }
    | { type: 'input_json_delta'; partial_json: string }
    | { type: string; [extra: string]: unknown };
}

export interface MessageDeltaData {
  type: 'message_delta';
  delta: { stop_reason?: string | null; stop_sequence?: string | null };
  usage?: AnthropicUsage;
}

export interface StreamErrorData {
  type: 'error';
  error: { type: string; message: string };
}
