import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { plainToInstance } from 'class-transformer';
import { ValidationError, validateSync } from 'class-validator';
import bytes from 'bytes';
import { parse as parseYaml } from 'yaml';
import type { AppConfig, LogLevel } from './app-config';
import { ConfigFile } from './config.schema';
import { DEMO_CONFIG } from './demo-config';
import { Secret } from './secret';

type Env = Record<string, string | undefined>;

/** Every problem found, each as `path: message`; start-up prints them all and exits 1. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.join('\n')}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * Loads env + YAML into one validated AppConfig (DESIGN §2). Environment wins over the file;
 * `${VAR}` and `${VAR:-default}` in the file are expanded from `env`.
 */
export function loadConfig(env: Env = process.env, cwd = process.cwd()): AppConfig {
  const { raw, source } = readRaw(env, cwd);
  return buildConfig(raw, env, source);
}

function readRaw(env: Env, cwd: string): { raw: unknown; source: string } {
  const explicit = env.DRAWBRIDGE_CONFIG;
  const path = resolve(cwd, explicit || 'drawbridge.yaml');
  if (!existsSync(path)) {
    if (explicit) throw new ConfigError([`DRAWBRIDGE_CONFIG: file not found: ${explicit}`]);
    return { raw: structuredClone(DEMO_CONFIG), source: 'built-in demo' };
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError([`${path}: ${(err as Error).message.split('\n')[0]}`]);
  }
  return { raw: expandEnv(parsed ?? {}, env), source: path };
}

/** Builds and validates a config from an already parsed object (the tests use this directly). */
export function buildConfig(raw: unknown, env: Env = {}, source = 'inline'): AppConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(['config: must be a mapping']);
  const file = applyEnvOverrides(raw as Record<string, unknown>, env);
  const parsed = plainToInstance(ConfigFile, file);
  const problems = validateSync(parsed, { whitelist: true, forbidNonWhitelisted: true }).flatMap((e) => flatten(e, ''));
  const logLevel = (env.LOG_LEVEL || 'info').toLowerCase() as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) problems.push(`LOG_LEVEL: must be one of: ${LOG_LEVELS.join(', ')}`);
  if (problems.length === 0) problems.push(...crossCheck(parsed, env));
  if (problems.length > 0) throw new ConfigError(problems);

  const token = parsed.admin.auth_token;
  return {
    server: {
      port: parsed.server.port,
      host: parsed.server.host,
      body_limit_bytes: bytes.parse(parsed.server.body_limit) ?? 10 * 1024 * 1024,
      drain_timeout_ms: parsed.server.drain_timeout_ms,
    },
    admin_token: token ? new Secret(token) : undefined,
    rate_limit: parsed.rate_limit,
    pool: parsed.pool,
    models: parsed.models,
    accounts: parsed.accounts.map(({ api_key, ...account }) => ({ ...account, api_key: api_key ? new Secret(api_key) : undefined })),
    database_url: env.DATABASE_URL ? new Secret(env.DATABASE_URL) : undefined,
    redis_url: env.REDIS_URL ? new Secret(env.REDIS_URL) : undefined,
    redis_key_prefix: parsed.redis.key_prefix,
    data_dir: resolve(env.DRAWBRIDGE_DATA_DIR || './data'),
    log_level: logLevel,
    source,
  };
}

function applyEnvOverrides(file: Record<string, unknown>, env: Env): Record<string, unknown> {
  const server = { ...(asRecord(file.server) ?? {}) };
  if (env.PORT) server.port = /^\d+$/.test(env.PORT) ? Number(env.PORT) : env.PORT;
  if (env.HOST) server.host = env.HOST;
  const admin = { ...(asRecord(file.admin) ?? {}) };
  if (env.DRAWBRIDGE_ADMIN_TOKEN) admin.auth_token = env.DRAWBRIDGE_ADMIN_TOKEN;
  return { ...file, server, admin };
}

function crossCheck(config: ConfigFile, env: Env): string[] {
  const problems: string[] = [];
  const modelIds = new Set<string>();
  config.models.forEach((model, i) => {
    if (modelIds.has(model.id)) problems.push(`models[${i}].id: duplicate id '${model.id}'`);
    modelIds.add(model.id);
  });
  const accountIds = new Set<string>();
  config.accounts.forEach((account, i) => {
    const at = `accounts[${i}]`;
    if (accountIds.has(account.id)) problems.push(`${at}.id: duplicate id '${account.id}'`);
    accountIds.add(account.id);
    if (account.provider === 'openai' && !account.base_url) problems.push(`${at}.base_url: is required for provider openai`);
    if (account.provider !== 'mock' && !account.api_key) problems.push(`${at}.api_key: is required for provider ${account.provider}`);
    account.models?.forEach((id, j) => {
      if (!modelIds.has(id)) problems.push(`${at}.models[${j}]: unknown model '${id}'`);
    });
  });
  if (env.DATABASE_URL && !config.admin.auth_token) {
    problems.push('admin.auth_token: is required with DATABASE_URL (or set DRAWBRIDGE_ADMIN_TOKEN)');
  }
  return problems;
}

function flatten(error: ValidationError, parent: string): string[] {
  const path = /^\d+$/.test(error.property) ? `${parent}[${error.property}]` : parent ? `${parent}.${error.property}` : error.property;
  const own = Object.entries(error.constraints ?? {}).map(([rule, message]) =>
    `${path}: ${rule === 'whitelistValidation' ? 'is not a known setting' : message}`,
  );
  // One line per field. Constraints are listed bottom decorator first; the top one (the type
  // check) says the most.
  return [...own.slice(-1), ...(error.children ?? []).flatMap((child) => flatten(child, path))];
}

const WHOLE_REF = /^\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}$/;
const ANY_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * Expands `${VAR}` and `${VAR:-default}` inside string values of the parsed tree (never in the
 * YAML text, so a value cannot inject structure). A value that is one whole reference takes the
 * type of what it expands to (`port: ${PORT}` is a number) and disappears when it is empty.
 */
export function expandEnv(node: unknown, env: Env): unknown {
  if (typeof node === 'string') {
    const whole = WHOLE_REF.exec(node);
    if (whole) {
      const value = lookup(env, whole[1], whole[2]);
      if (value === '') return undefined;
      return /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value === 'true' ? true : value === 'false' ? false : value;
    }
    return node.replace(ANY_REF, (_, name: string, fallback?: string) => lookup(env, name, fallback));
  }
  if (Array.isArray(node)) return node.map((item) => expandEnv(item, env));
  if (node !== null && typeof node === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      const expanded = expandEnv(value, env);
      if (expanded !== undefined) out[key] = expanded;
    }
    return out;
  }
  return node;
}

function lookup(env: Env, name: string, fallback: string | undefined): string {
  const value = env[name];
  return value !== undefined && value !== '' ? value : (fallback ?? '');
}

function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
