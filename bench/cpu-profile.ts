/*
 * Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and sums self time per function and per
 * area of the stack (Node's HTTP core, Nest, Express, ioredis, Drawbridge's own modules...), only
 * over the samples taken inside a time window, so start-up and shutdown do not blur the picture.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTimeEntry {
  name: string;
  /** Where it lives: a repo-relative or package-relative file and line, or a V8 pseudo frame. */
  where: string;
  area: string;
  selfMs: number;
  /** Share of the busy (non-idle) time in the window. */
  share: number;
}

export interface ProfileSummary {
  /** Samples counted (inside the window). */
  samples: number;
  /** Whether the window matched the profile's clock; false: every sample was counted. */
  windowed: boolean;
  windowMs: number;
  busyMs: number;
  idleMs: number;
  top: SelfTimeEntry[];
  areas: Array<{ area: string; selfMs: number; share: number }>;
  /**
   * Who the socket write syscalls were made for: each write sample charged to the nearest caller
   * outside Node's own code (ioredis, undici, Drawbridge's response, pg...).
   */
  writeCallers: Array<{ caller: string; selfMs: number; share: number }>;
  /**
   * Inclusive time under each of Drawbridge's modules: a sample counts for the innermost frame of
   * `src/<module>/` on its stack. Synchronous stacks only: work a library does later in a callback
   * of its own (a reply parsed on socket data) is charged to the library, not to the module.
   */
  modules: Array<{ module: string; ms: number; share: number }>;
}

/** Sums self time; `fromUs`/`toUs` bound the window in the profile's clock (process.hrtime µs). */
export function summarizeProfile(path: string, root: string, fromUs?: number, toUs?: number, top = 15): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);

  // Sample i is taken at startTime + sum(timeDeltas[0..i]); it stands for the interval up to the next one.
  const times: number[] = [];
  let t = profile.startTime;
  for (const delta of profile.timeDeltas) times.push((t += delta));
  const inWindow = (i: number): boolean => fromUs === undefined || toUs === undefined || (times[i]! >= fromUs && times[i]! < toUs);
  let windowed = fromUs !== undefined && toUs !== undefined;
  let counted = profile.samples.reduce((n, _s, i) => n + (inWindow(i) ? 1 : 0), 0);
  if (windowed && counted < 100) {
    // The clocks did not line up (or the window was tiny): count everything rather than nothing.
    windowed = false;
    counted = profile.samples.length;
  }

  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  // The nearest caller outside Node's own code, and, when that is a library, the nearest
  // Drawbridge frame above it (which of the gateway's calls made the library write).
  const callerOf = (id: number): string => {
    let library: string | undefined;
    for (let at = parent.get(id); at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!frame.url || frame.url.startsWith('node:')) continue;
      const name = `${frame.functionName || '(anonymous)'} (${location(frame, root)})`;
      const ours = !frame.url.includes('/node_modules/');
      if (ours) return library ? `${library} ← ${name}` : name;
      library ??= name;
    }
    return library ?? '(no caller outside Node)';
  };
  const writeCallers = new Map<string, number>();
  const moduleOf = (id: number): string | undefined => {
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const match = /\/src\/([^/]+)\/[^/]+$/.exec(byId.get(at)!.callFrame.url);
      if (match && !byId.get(at)!.callFrame.url.includes('/node_modules/')) return `${match[1]}/`;
    }
    return undefined;
  };
  const modules = new Map<string, number>();
  const perFunction = new Map<string, { name: string; where: string; area: string; us: number }>();
  let idleUs = 0;
  let totalUs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    if (windowed && !inWindow(i)) continue;
    const us = i + 1 < times.length ? times[i + 1]! - times[i]! : 0;
    const frame = byId.get(profile.samples[i]!)!.callFrame;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const where = location(frame, root);
    const key = `${frame.functionName}@${where}`;
    const entry = perFunction.get(key) ?? { name: frame.functionName || '(anonymous)', where, area: areaOf(frame), us: 0 };
    entry.us += us;
    perFunction.set(key, entry);
    const module = moduleOf(profile.samples[i]!);
    if (module) modules.set(module, (modules.get(module) ?? 0) + us);
    if (entry.area.startsWith('socket writes')) {
      const caller = callerOf(profile.samples[i]!);
      writeCallers.set(caller, (writeCallers.get(caller) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const entries = [...perFunction.values()].sort((a, b) => b.us - a.us);
  const areas = new Map<string, number>();
  for (const entry of entries) areas.set(entry.area, (areas.get(entry.area) ?? 0) + entry.us);
  const share = (us: number): number => (busyUs > 0 ? us / busyUs : 0);
  return {
    samples: counted,
    windowed,
    windowMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    top: entries.slice(0, top).map((e) => ({ name: e.name, where: e.where, area: e.area, selfMs: e.us / 1000, share: share(e.us) })),
    areas: [...areas.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([area, us]) => ({ area, selfMs: us / 1000, share: share(us) })),
    modules: [...modules.entries()].sort((a, b) => b[1] - a[1]).map(([module, us]) => ({ module, ms: us / 1000, share: share(us) })),
    writeCallers: [...writeCallers.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([caller, us]) => ({ caller, selfMs: us / 1000, share: share(us) })),
  };
}

function location(frame: CallFrame, root: string): string {
  if (!frame.url) return frame.functionName.startsWith('(') ? 'V8' : 'V8 builtin';
  let url = frame.url.replace(/^file:\/\//, '');
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) url = url.slice(nm + '/node_modules/'.length);
  else if (url.startsWith('/')) url = relative(root, url);
  return `${url}:${frame.lineNumber + 1}`;
}

const PACKAGE_AREAS: Array<[RegExp, string]> = [
  [/^@nestjs\//, 'NestJS (router, guards, interceptors, pipes)'],
  [/^(express|router|body-parser|finalhandler|send|serve-static|path-to-regexp|on-finished|content-type|type-is|mime-types|accepts|negotiator|qs|raw-body|statuses|depd|encodeurl|etag|fresh|parseurl|range-parser|vary|cookie|cookie-signature|merge-descriptors|methods|utils-merge|proxy-addr|forwarded)\//, 'Express'],
  [/^rxjs\//, 'RxJS'],
  [/^undici\//, 'undici (upstream client)'],
  [/^(ioredis|redis-parser|redis-errors|denque|cluster-key-slot|standard-as-callback)\//, 'ioredis'],
  [/^(pg|pg-protocol|pg-pool|pg-types|pg-connection-string|postgres-array|postgres-date|postgres-interval|postgres-bytea|typeorm|@nestjs\/typeorm)\//, 'Postgres client (pg, TypeORM)'],
  [/^(prom-client|@willsoto\/nestjs-prometheus|tdigest|bintrees)\//, 'prom-client (metrics)'],
  [/^(@pinojs\/[^/]+|pino|pino-http|nestjs-pino|pino-std-serializers|sonic-boom|fast-redact|thread-stream|quick-format-unescaped|atomic-sleep|safe-stable-stringify|on-exit-leak-free)\//, 'pino (logging)'],
  [/^(class-validator|class-transformer|validator|libphonenumber-js)\//, 'class-validator / class-transformer'],
  [/^gpt-tokenizer\//, 'gpt-tokenizer'],
  [/^reflect-metadata\//, 'reflect-metadata'],
];

function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)') return 'V8 / native (program)';
    if (/^(parse|stringify|JSONParse|JSONStringify)$/.test(functionName)) return 'JSON (V8)';
    // The stream_wrap bindings: the write syscalls themselves, made on the main thread.
    if (/^(writev|writeBuffer|writeUtf8String|writeLatin1String|writeAsciiString|writeUcs2String|shutdown|readStart|readStop)$/.test(functionName)) {
      return 'socket writes (syscalls from the main thread)';
    }
    if (/^(runMicrotasks|processTicksAndRejections)$/.test(functionName)) return 'Node timers / events / async';
    return 'V8 builtins / native';
  }
  if (url.startsWith('node:')) {
    if (/^node:(_http|internal\/http|http)/.test(url)) return 'Node http core';
    if (/^node:(net|internal\/stream_base|internal\/net|internal\/tcp|dns)/.test(url)) return 'Node net / sockets';
    if (/stream/.test(url)) return 'Node streams';
    if (/crypto/.test(url)) return 'Node crypto';
    if (/async_hooks|async_local_storage/.test(url)) return 'async_hooks (AsyncLocalStorage promise hooks)';
    if (/timers|process\/task_queues|async_hooks|events|promises/.test(url)) return 'Node timers / events / async';
    return 'Node core (other)';
  }
  const clean = url.replace(/^file:\/\//, '');
  const nm = clean.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const rest = clean.slice(nm + '/node_modules/'.length);
    for (const [pattern, area] of PACKAGE_AREAS) if (pattern.test(rest)) return area;
    const name = rest.startsWith('@') ? rest.split('/').slice(0, 2).join('/') : rest.split('/')[0]!;
    return `package ${name}`;
  }
  const src = /\/dist\/src\/([^/]+)\//.exec(clean) ?? /\/src\/([^/]+)\//.exec(clean);
  if (src) return `Drawbridge ${src[1]}/`;
  if (/\/src\/[^/]+$/.test(clean)) return 'Drawbridge src/';
  if (/\/(dist\/)?bench\//.test(clean)) return 'bench harness';
  return 'other';
}
