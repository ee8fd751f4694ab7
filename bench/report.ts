/*
 * The benchmark's report: every figure as JSON, the DESIGN §7 targets checked, and RESULTS.md
 * with B0 / B1 / G side by side and, for each missed target, the evidence of why.
 */
import type { ProfileSummary } from './cpu-profile';
import type { HeapDiff } from './heap-snapshot';

export interface Round {
  p50: number;
  p99: number;
  /** 2xx answers in the round. */
  n: number;
  errors: number;
}

export interface StreamRound {
  ttftP50: number;
  ttftP99: number;
  gapP50: number;
  gapP99: number;
  failed: number;
  errors: string[];
}

export interface StreamSummary {
  rounds: StreamRound[];
  ttftP50: number;
  ttftP99: number;
  gapP50: number;
  gapP99: number;
  /** p99 over every stream of every round (the headline uses the median of round p99s). */
  pooledTtftP99: number;
  pooledGapP99: number;
  failed: number;
}

/** Quantiles of a set of ms samples. */
export interface Spread {
  n: number;
  p50: number;
  p90: number;
  p99: number;
}

/** G's waits in one more run after its measured rounds (bench/wait-timer.ts), beside what the client saw. */
export interface WaitSpreads {
  /** The client's latency (non-streaming) or time to first token (streams). */
  client: Spread;
  rateLimit: Spread;
  slot: Spread;
  /** To the whole answer (non-streaming) or to the first chunk (streams). */
  upstream: Spread;
}

export interface ThroughputTarget {
  rounds: Array<{ rps: number; errors: number; cpuUsPerRequest: number; writesPerRequest: number; readsPerRequest: number }>;
  rps: number;
  /** CPU time (user + system) of the target's own process per answered request, µs. */
  cpuUsPerRequest: number;
  /** Write and read syscalls of the target's own process per answered request (/proc/<pid>/io). */
  writesPerRequest: number;
  readsPerRequest: number;
}

export interface MemoryPoint {
  streams: number;
  open: number;
  rssMb: number;
  perThousandMb: number;
  /** Open file descriptors of G (sockets: one per client, one per upstream connection). */
  fds: number;
}

export interface TargetCheck {
  id: string;
  figure: string;
  value: string;
  target: string;
  /** null: reported, no target. */
  pass: boolean | null;
}

export interface BenchResults {
  date: string;
  quick: boolean;
  git: { commit: string; changedFiles: string[] };
  durationSeconds: number;
  machine: {
    cores: number;
    cpuModel: string;
    node: string;
    platform: string;
    memoryGb: number;
    loadAverageAtStart: number[];
    loadAverageAtEnd: number[];
    openFileLimit: string;
  };
  settings: unknown;
  latency: {
    targets: Record<'B0' | 'B1' | 'G', { rounds: Round[]; p50: number; p99: number }>;
    added: Record<'G' | 'B1', { p50: number; p99: number }>;
  };
  throughput: {
    targets: Record<string, ThroughputTarget>;
    upstreamCpuUsPerRequest: number;
    gOverB1: number;
    authRateLimitUsageCost: number;
    /** The same cost seen as CPU: 1 − CPU per request of G-off / of G (less sensitive to a noisy machine). */
    authRateLimitUsageCpuShare: number;
    usageCost: number;
    /** The same costs against G-factory, built through the same testing-module factory as the variants. */
    likeForLikeAuthRateLimitUsageCost: number;
    likeForLikeAuthRateLimitUsageCpuShare: number;
    likeForLikeUsageCost: number;
    /** 1 − G-factory / G (throughput) and G-factory / G − 1 (CPU per request): build path plus process-to-process noise. */
    factorySpread: number;
    factoryCpuSpread: number;
    /** Mean of drawbridge_gateway_overhead_seconds over G's throughput rounds, ms. */
    gatewayOverheadMeanMs: number | null;
  };
  eventLoop: { source: string; rounds: number[]; p99Ms: number; samplingIntervalMs: number };
  /** One Redis script call from a Node client, µs: back to back, and after 20 ms idle. */
  redisRtt: { busyP50Us: number; busyP90Us: number; idleP50Us: number; idleP90Us: number };
  waits: { nonStreaming: WaitSpreads; streams: WaitSpreads };
  streams: {
    targets: Record<'B0' | 'B1' | 'G', StreamSummary>;
    added: Record<'G' | 'B1', { ttftP99: number; gapP99: number }>;
  };
  memory: {
    chunkDelayMs: number;
    idleMb: number;
    idleFds: number;
    first: MemoryPoint;
    second: MemoryPoint & { secondsAfterFirst: number };
    afterMb: number;
    afterFds: number;
    afterGcMb: number;
    /** Once the idle upstream keep-alive connections had closed (or the wait ran out), after a full GC. */
    later: { waitedSeconds: number; fds: number; rssMb: number };
    failedStreams: number;
    streamErrors: Record<string, number>;
    allEndedInTime: boolean;
    /** `process.memoryUsage()` after a full GC: idle, with the second batch open, just after they ended, once the idle connections closed. */
    heap: Record<'idle' | 'second' | 'after' | 'later', NodeJS.MemoryUsage>;
    /** Heap snapshots of another fresh G, idle vs with `streams` open; only when the memory figure missed. */
    heapDiff: (HeapDiff & { streams: number }) | null;
  };
  profile: ProfileSummary & { file: string; requestsPerSecond: number; cpuUsPerRequest: number | null };
  targets: TargetCheck[];
}

const ms = (v: number, digits = 3): string => (Number.isFinite(v) ? `${v.toFixed(digits)} ms` : 'n/a');
const signedMs = (v: number, digits = 3): string => (Number.isFinite(v) ? `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(digits)} ms` : 'n/a');
const rate = (v: number): string => `${Math.round(v).toLocaleString('en-US')}/s`;
const pct = (v: number): string => `${(v * 100).toFixed(1)} %`;
const mb = (v: number): string => `${v.toFixed(1)} MB`;
const us = (v: number | null): string => (v !== null && Number.isFinite(v) ? `${Math.round(v)} µs` : 'n/a');

/** The DESIGN §7 targets, checked. */
export function evaluate(r: BenchResults): TargetCheck[] {
  const g = r.throughput.targets.G!;
  const memPerThousand = Math.max(r.memory.first.perThousandMb, r.memory.second.perThousandMb);
  const residual = r.memory.later.rssMb - r.memory.idleMb;
  return [
    { id: 'latency_p50', figure: 'added latency p50, non-streaming, c=1 (G − B0)', value: signedMs(r.latency.added.G.p50), target: '≤ 0.4 ms', pass: r.latency.added.G.p50 <= 0.4 },
    { id: 'latency_p99', figure: 'added latency p99, non-streaming, c=1 (G − B0)', value: signedMs(r.latency.added.G.p99), target: '≤ 1.5 ms', pass: r.latency.added.G.p99 <= 1.5 },
    { id: 'throughput_vs_floor', figure: 'throughput c=50, G / B1', value: `${r.throughput.gOverB1.toFixed(2)} × B1`, target: '≥ 0.5 × B1', pass: r.throughput.gOverB1 >= 0.5 },
    { id: 'throughput_absolute', figure: 'throughput c=50, G', value: rate(g.rps), target: '≥ 4,000/s on 2 cores', pass: g.rps >= 4000 },
    { id: 'auth_rate_limit_usage_cost', figure: 'cost of auth + rate limit + usage (1 − G / G-off)', value: pct(r.throughput.authRateLimitUsageCost), target: '≤ 25 % of throughput', pass: r.throughput.authRateLimitUsageCost <= 0.25 },
    { id: 'usage_cost', figure: 'cost of usage writes (1 − G / G-usage-off)', value: pct(r.throughput.usageCost), target: 'reported (usage off the hot path)', pass: null },
    { id: 'ttft_p99', figure: 'streams: added time to first token p99 (G − B0)', value: signedMs(r.streams.added.G.ttftP99), target: '≤ 1 ms', pass: r.streams.added.G.ttftP99 <= 1 },
    { id: 'chunk_gap_p99', figure: 'streams: added chunk gap p99 (G − B0)', value: signedMs(r.streams.added.G.gapP99), target: '≤ 0.2 ms', pass: r.streams.added.G.gapP99 <= 0.2 },
    { id: 'memory_per_1000_streams', figure: `memory per 1,000 concurrent streams (worst of ${r.memory.first.streams} and ${r.memory.second.streams})`, value: mb(memPerThousand), target: '≤ 35 MB', pass: memPerThousand <= 35 },
    { id: 'memory_after_streams', figure: `RSS after the streams ended and the idle upstream connections closed (${r.memory.later.waitedSeconds.toFixed(0)} s, full GC) − idle`, value: mb(residual), target: 'back near idle (≤ 35 MB above)', pass: residual <= 35 },
    { id: 'event_loop_p99', figure: 'event-loop delay p99 of G during the throughput run', value: ms(r.eventLoop.p99Ms, 1), target: 'reported', pass: null },
  ];
}

const verdict = (pass: boolean | null): string => (pass === null ? 'reported' : pass ? '**PASS**' : '**MISS**');

/** What would reduce an area's share, for the areas a profile can show on G's hot path. */
const REMEDIES: Array<[RegExp, string]> = [
  [/^NestJS/, "Nest's per-request pipeline. Completions no longer pass through it (CompletionsFastLane serves them from node:http); what is left here is start-up code and the scrapes of /metrics."],
  [/^Express/, 'Express routing. Completions no longer pass through it (CompletionsFastLane); what is left is the /metrics scrapes and the admin calls of the run.'],
  [/^RxJS/, 'RxJS from Nest interceptors: not on the completions path any more; what is left belongs to the few Nest-routed calls of the run.'],
  [/^Node http core/, 'node:http parsing and writing: B1 pays this too. G answers with one `writeHead` + one `end`.'],
  [/^socket writes/, 'The write syscalls themselves, made synchronously on the main thread; B1 pays them too. The throughput table counts them per request against B1\'s: only fewer processes to talk to (or a Unix socket to Redis) would make them cheaper.'],
  [/^Node net/, 'Socket I/O: inherent (B1 pays it too).'],
  [/^Node streams/, 'Node stream machinery under the sockets and the upstream body: B1 pays it too.'],
  [/^undici/, 'The upstream client: inherent to proxying (B1 uses the same Pool).'],
  [/^ioredis/, "The three script calls of each request (rate-limit window, slot acquire, slot release): ioredis command building and reply parsing. Commands issued in the same turn of the event loop already share one write (the socket is corked until setImmediate). One script doing rate limit + slot acquire together would save a command per request, at the price of coupling the rate-limit and account-pool modules."],
  [/^Postgres client/, 'Usage INSERTs: one statement per batch of up to 200 rows, passed as one JSON parameter. Larger batches would cut the per-statement share.'],
  [/^prom-client/, "Metrics: four counters and three histograms per request; prom-client hashes the label set on every increment (its `labels()` children do the same), so only fewer observations would shrink it."],
  [/^pino/, 'Logging, although no request line is written at `info`: pino-http still builds a child logger per request (`child`, `asChindings`, the `req` serializer and redaction run for every request). Not attaching a per-request logger on the completions route (or building its bindings lazily) removes it.'],
  [/^async_hooks/, "Promise hooks: nestjs-pino keeps each request's logger in AsyncLocalStorage, which on Node 20 runs a hook on every promise the process creates. Without that store (the logger passed where it is needed) the cost goes away."],
  [/^GC$/, 'Garbage collection: allocation per request (headers objects, parsed and re-serialised JSON, closures, promises). Fewer intermediate objects on the hot path lower it.'],
  [/^JSON/, 'JSON.parse / JSON.stringify of the request and the upstream answer: the gateway must parse the request to validate and rewrite `model`; the answer could be patched without a full parse/stringify round trip.'],
  [/^class-validator/, 'Decorator-based validation per request: a hand-written validator for the one hot DTO is much cheaper.'],
  [/^Node crypto/, 'SHA-256 of the key per request: a small map from secret to key (bounded, in memory) would skip the hash on repeat requests.'],
  [/^Node timers/, 'Promise/async bookkeeping and timers per request: fewer awaits and `setTimeout`s on the hot path.'],
  [/^Drawbridge/, "Drawbridge's own code in this module: see the module and top-function tables below."],
  [/^gpt-tokenizer/, 'Token counting: only needed when the upstream reports no usage; it should not run when it does.'],
];

function remedyFor(area: string): string | undefined {
  return REMEDIES.find(([pattern]) => pattern.test(area))?.[1];
}

export function renderMarkdown(r: BenchResults): string {
  const t = r.throughput.targets;
  const lat = r.latency.targets;
  const st = r.streams.targets;
  const check = (id: string): TargetCheck => r.targets.find((c) => c.id === id)!;
  const lines: string[] = [];
  const push = (...more: string[]): void => {
    lines.push(...more);
  };

  push('# Drawbridge benchmark results', '');
  push(`Written by \`npm run bench\` on ${r.date} in ${r.durationSeconds} s. How to run and what each figure means: [README.md](README.md). Every figure: [results.json](results.json).`, '');
  push(`**Code measured:** commit \`${r.git.commit}\`${r.git.changedFiles.length ? ` plus uncommitted changes in ${r.git.changedFiles.map((f) => `\`${f}\``).join(', ')}` : ''}.`, '');
  if (r.quick) push('> **QUICK MODE** (`BENCH_QUICK=1`): a smoke test of the harness. These figures mean nothing.', '');
  push(
    `**Machine:** ${r.machine.cores} cores, ${r.machine.cpuModel}, ${r.machine.memoryGb} GB, ${r.machine.platform}, Node ${r.machine.node}; open files ${r.machine.openFileLimit}.`,
    `Load average at start ${r.machine.loadAverageAtStart.join(' / ')}, at end ${r.machine.loadAverageAtEnd.join(' / ')} (1 / 5 / 15 min). ` +
      'The machine is shared (other engineers run test suites on the same 2 cores), so the figures are noisy: absolute numbers and small differences should be read with that in mind; the ratios between targets measured in interleaved rounds are the more robust part.',
    '',
    'B0 = the fake OpenAI upstream directly; B1 = the floor proxy (node:http + undici Pool pass-through) → upstream; G = Drawbridge with everything on (real Postgres and Redis, key auth, rate limit, slots, metrics, usage) → upstream. Each in its own process; the load generator (autocannon, the SSE client) in a fourth. Figures are the median of the per-round figures; rounds are interleaved between targets.',
    '',
  );

  push('## Summary', '');
  push('| figure | B0 | B1 | G | G figure | target (DESIGN §7) | result |', '|---|---|---|---|---|---|---|');
  push(`| latency p50, non-streaming, c=1 | ${ms(lat.B0.p50)} | ${ms(lat.B1.p50)} | ${ms(lat.G.p50)} | ${signedMs(r.latency.added.G.p50)} (B1 ${signedMs(r.latency.added.B1.p50)}) | added ≤ 0.4 ms | ${verdict(check('latency_p50').pass)} |`);
  push(`| latency p99, non-streaming, c=1 | ${ms(lat.B0.p99)} | ${ms(lat.B1.p99)} | ${ms(lat.G.p99)} | ${signedMs(r.latency.added.G.p99)} (B1 ${signedMs(r.latency.added.B1.p99)}) | added ≤ 1.5 ms | ${verdict(check('latency_p99').pass)} |`);
  push(`| throughput, non-streaming, c=50 | ${rate(t.B0!.rps)} | ${rate(t.B1!.rps)} | ${rate(t.G!.rps)} | ${r.throughput.gOverB1.toFixed(2)} × B1 | ≥ 0.5 × B1 | ${verdict(check('throughput_vs_floor').pass)} |`);
  push(`| | | | | ${rate(t.G!.rps)} | ≥ 4,000/s on 2 cores | ${verdict(check('throughput_absolute').pass)} |`);
  push(`| cost of auth + rate limit + usage | | | G-off ${rate(t['G-off']!.rps)} | ${pct(r.throughput.authRateLimitUsageCost)}; like for like ${pct(r.throughput.likeForLikeAuthRateLimitUsageCost)} (CPU per request ${pct(r.throughput.likeForLikeAuthRateLimitUsageCpuShare)}) | ≤ 25 % | ${verdict(check('auth_rate_limit_usage_cost').pass)} |`);
  push(`| usage writes on vs off | | | G-usage-off ${rate(t['G-usage-off']!.rps)} | ${pct(r.throughput.usageCost)}; like for like ${pct(r.throughput.likeForLikeUsageCost)} | reported | reported |`);
  push(`| streams: time to first token p99 | ${ms(st.B0.ttftP99, 2)} | ${ms(st.B1.ttftP99, 2)} | ${ms(st.G.ttftP99, 2)} | ${signedMs(r.streams.added.G.ttftP99, 2)} (B1 ${signedMs(r.streams.added.B1.ttftP99, 2)}) | added ≤ 1 ms | ${verdict(check('ttft_p99').pass)} |`);
  push(`| streams: chunk gap p99 (chunks every ${(r.settings as { streams: { chunkDelayMs: number } }).streams.chunkDelayMs} ms) | ${ms(st.B0.gapP99, 2)} | ${ms(st.B1.gapP99, 2)} | ${ms(st.G.gapP99, 2)} | ${signedMs(r.streams.added.G.gapP99, 2)} (B1 ${signedMs(r.streams.added.B1.gapP99, 2)}) | added ≤ 0.2 ms | ${verdict(check('chunk_gap_p99').pass)} |`);
  push(`| memory per 1,000 concurrent streams | | | idle ${mb(r.memory.idleMb)}; ${r.memory.first.open.toLocaleString('en-US')} streams ${mb(r.memory.first.rssMb)}; ${r.memory.second.open.toLocaleString('en-US')} streams ${mb(r.memory.second.rssMb)} | ${mb(r.memory.first.perThousandMb)} / ${mb(r.memory.second.perThousandMb)} per 1,000 | ≤ 35 MB | ${verdict(check('memory_per_1000_streams').pass)} |`);
  push(`| memory after the streams ended | | | at once ${mb(r.memory.afterMb)} (${mb(r.memory.afterGcMb)} after a full GC); ${r.memory.later.waitedSeconds.toFixed(0)} s later ${mb(r.memory.later.rssMb)} | ${mb(r.memory.later.rssMb - r.memory.idleMb)} above idle | back near idle | ${verdict(check('memory_after_streams').pass)} |`);
  push(`| event-loop delay p99 during the throughput run | | | ${ms(r.eventLoop.p99Ms, 1)} | includes the ${r.eventLoop.samplingIntervalMs} ms sampling interval | reported | reported |`);
  push(`| Redis round trip, one script call from Node (context for the latency rows) | | | back to back p50 ${us(r.redisRtt.busyP50Us)}; after 20 ms idle p50 ${us(r.redisRtt.idleP50Us)} | p90 ${us(r.redisRtt.busyP90Us)} / ${us(r.redisRtt.idleP90Us)} | reported | reported |`);
  push(
    '',
    `Costs are 1 − (G / the variant with parts switched off), as DESIGN §7 defines them, and "like for like": 1 − (G-factory / the variant), where G-factory is G with nothing switched off but its app built through the same testing-module factory (\`Test.createTestingModule\`) as the variants. G-factory differed from G by ${pct(r.throughput.factorySpread)} in throughput and ${pct(r.throughput.factoryCpuSpread)} in CPU per request: that is the build path plus how far two processes of the same code drift apart on this machine (JIT and scheduling), so cost figures smaller than it, or negative, are within this run's noise; a negative cost never means that removing work made G slower. ` +
      `The CPU profile gives a steadier view: code under \`src/keys/\`, \`src/auth/\`, \`src/rate-limit/\` and \`src/usage/\` takes ${pct(moduleShare(r, ['keys/', 'auth/', 'rate-limit/', 'usage/']))} of G's busy time, plus ioredis ${pct(areaShare(r, /^ioredis/))} (shared between the rate-limit script and the slot leases) and the Postgres client ${pct(areaShare(r, /^Postgres/))} (usage INSERTs).`,
    '',
  );

  push('## Throughput and CPU per request', '');
  push(
    'CPU per request is the user + system time of the target\'s own process (from `/proc/<pid>/stat`) over each throughput round, divided by the answers it gave. For G it leaves out the work Redis and Postgres do in their own processes, which also runs on the same two cores. Syscalls per request come from the same process\'s `/proc/<pid>/io` (`syscw`, `syscr`): a proxy needs at least one write to the client and one to the upstream per request; G\'s Redis commands of one event-loop turn share one write.',
    '',
  );
  push('| target | what runs | req/s (median) | rounds | CPU per request in its process | write / read syscalls per request |', '|---|---|---|---|---|---|');
  const what: Record<string, string> = {
    B0: 'fake upstream only',
    B1: 'floor proxy → upstream',
    G: 'Drawbridge, everything on → upstream',
    'G-off': 'Drawbridge with KeyAuthenticator, rate-limit store and UsageWriter as no-ops (slots, Redis leases included, metrics and the relay still on)',
    'G-usage-off': 'Drawbridge with the UsageWriter as a no-op',
    'G-factory': 'G with nothing switched off, its app built through the same factory as the two variants below (their baseline)',
  };
  for (const name of ['B0', 'B1', 'G', 'G-factory', 'G-off', 'G-usage-off']) {
    const target = t[name];
    if (!target) continue;
    push(`| ${name} | ${what[name]} | ${rate(target.rps)} | ${target.rounds.map((x) => Math.round(x.rps)).join(', ')} | ${us(target.cpuUsPerRequest)} | ${target.writesPerRequest.toFixed(2)} / ${target.readsPerRequest.toFixed(2)} |`);
  }
  push('', `The upstream process itself spent ${us(r.throughput.upstreamCpuUsPerRequest)} CPU per request (median over every round).`);
  if (r.throughput.gatewayOverheadMeanMs !== null) {
    push(`G's own \`drawbridge_gateway_overhead_seconds\` histogram averaged ${ms(r.throughput.gatewayOverheadMeanMs)} per request over the whole G run (time in Drawbridge with upstream waits excluded, as the gateway measures itself).`);
  }
  const errors = Object.entries(t).filter(([, x]) => x.rounds.some((round) => round.errors > 0));
  if (errors.length > 0) push('', `Errors or non-2xx answers during throughput rounds: ${errors.map(([name, x]) => `${name} ${x.rounds.map((round) => round.errors).join('/')}`).join('; ')}.`);
  push('');

  push('## Memory', '');
  const m = r.memory;
  const heapDelta = (k: keyof NodeJS.MemoryUsage): string => mb((m.heap.second[k] - m.heap.idle[k]) / 2 ** 20);
  push(
    `A fresh G process (started with \`--expose-gc\`, warmed up, one full GC) held long streams (${(r.settings as { memory: { chunks: number } }).memory.chunks} chunks every ${m.chunkDelayMs} ms) open. RSS is VmRSS from \`/proc/<pid>/status\`, the median of three reads after a 1 s settle. Each open stream costs G two sockets (the client's and an upstream connection); after the streams end, undici keeps the upstream connections open and idle until the upstream's Keep-Alive hint runs out (the fake upstream says 60 s), which is why the last row waits for the open fds to fall back.`,
    '',
    '| point | streams open | G open fds | RSS | per 1,000 streams above idle |',
    '|---|---|---|---|---|',
    `| idle | 0 | ${m.idleFds} | ${mb(m.idleMb)} | |`,
    `| first | ${m.first.open} | ${m.first.fds} | ${mb(m.first.rssMb)} | ${mb(m.first.perThousandMb)} |`,
    `| second (${m.second.secondsAfterFirst.toFixed(1)} s after the first batch started) | ${m.second.open} | ${m.second.fds} | ${mb(m.second.rssMb)} | ${mb(m.second.perThousandMb)} |`,
    `| just after they ended | 0 | ${m.afterFds} | ${mb(m.afterMb)} (${mb(m.afterGcMb)} after a full GC) | |`,
    `| ${m.later.waitedSeconds.toFixed(0)} s later, after a full GC | 0 | ${m.later.fds} | ${mb(m.later.rssMb)} | |`,
    '',
    `After a full GC with ${m.second.open} streams open, the live V8 heap was ${heapDelta('heapUsed')} above idle (heap reserved ${heapDelta('heapTotal')}), external memory ${heapDelta('external')} (array buffers ${heapDelta('arrayBuffers')}): ${mb((((m.heap.second.heapUsed - m.heap.idle.heapUsed) / 2 ** 20) * 1000) / Math.max(1, m.second.open))} of live heap per 1,000 streams. The rest of the RSS growth is memory outside the V8 heap (socket handles, HTTP parser state, malloc arenas) and heap pages V8 keeps reserved. ` +
      `Just after every stream had ended (a full GC, ${m.afterFds} fds: the idle upstream connections still open) the live heap was ${mb((m.heap.after.heapUsed - m.heap.idle.heapUsed) / 2 ** 20)} above idle; once they had closed, ${mb((m.heap.later.heapUsed - m.heap.idle.heapUsed) / 2 ** 20)}. ${m.failedStreams > 0 ? `${m.failedStreams} streams failed: ${JSON.stringify(m.streamErrors)}.` : 'No stream failed.'}${m.allEndedInTime ? '' : ' Some streams had not ended within the time limit and were cut.'}`,
    '',
  );
  if (m.heapDiff) {
    const d = m.heapDiff;
    const added = d.afterBytes - d.beforeBytes;
    push(
      `What ${d.streams} open streams added to the heap: another fresh G, heap snapshots idle and with the streams open (shallow sizes: a string's or Buffer's backing store may be counted under another kind). ${mb(added / 2 ** 20)} in all, ${(added / d.streams / 1024).toFixed(1)} KB per stream; the kinds that grew most:`,
      '',
      '| kind (constructor, or V8 kind) | objects added | per stream | bytes added | per stream |',
      '|---|---|---|---|---|',
      ...d.top.map(
        (g) => `| \`${g.kind.replace(/\|/g, '\\|').slice(0, 80)}\` | ${g.count.toLocaleString('en-US')} | ${(g.count / d.streams).toFixed(1)} | ${mb(g.bytes / 2 ** 20)} | ${(g.bytes / d.streams / 1024).toFixed(1)} KB |`,
      ),
      '',
    );
  }

  push('## What G waits on', '');
  const w = r.waits;
  const waitRow = (label: string, x: Spread): string => `| ${label} | ${ms(x.p50)} | ${ms(x.p90)} | ${ms(x.p99)} | ${x.n.toLocaleString('en-US')} |`;
  push(
    "After G's measured rounds, the same G process times its own waits (bench/wait-timer.ts wraps the rate-limit store, the slot pool and the upstream adapter) through one more concurrency-1 run and one more stream round, beside what the client saw in those runs. The rate-limit script and the slot lease go out to Redis together and overlap, so a request waits for the slower of the two.",
    '',
    '| wait | p50 | p90 | p99 | samples |',
    '|---|---|---|---|---|',
    waitRow('non-streaming, c=1: the client\'s latency', w.nonStreaming.client),
    waitRow('… G ⇄ Redis: rate-limit script', w.nonStreaming.rateLimit),
    waitRow('… G ⇄ Redis: slot lease', w.nonStreaming.slot),
    waitRow('… G ⇄ upstream: the whole answer', w.nonStreaming.upstream),
    waitRow(`streams, ${(r.settings as { streams: { concurrency: number } }).streams.concurrency} at a time: the client's time to first token`, w.streams.client),
    waitRow('… G ⇄ Redis: rate-limit script', w.streams.rateLimit),
    waitRow('… G ⇄ Redis: slot lease', w.streams.slot),
    waitRow('… G ⇄ upstream: to the first chunk', w.streams.upstream),
    '',
    `For scale, B0's own latency at c=1 was ${ms(lat.B0.p50)} at p50 and ${ms(lat.B0.p99)} at p99: the same upstream takes longer and varies more seen from inside G, whose requests cross more processes on the same two cores.`,
    '',
  );

  const misses = r.targets.filter((c) => c.pass === false);
  push('## Where G misses, and why', '');
  if (misses.length === 0) {
    push('G meets every DESIGN §7 target in this run.', '');
  } else {
    for (const miss of misses) push(...explainMiss(miss, r), '');
  }

  const p = r.profile;
  push('## Where G\'s CPU goes (node --cpu-prof under the throughput load)', '');
  push(
    `A fresh G ran under \`node --cpu-prof\` at concurrency 50 (${rate(p.requestsPerSecond)} with the profiler on). ${p.samples} samples ${p.windowed ? 'inside the measured window (start-up, warm-up and shutdown excluded)' : '(the window could not be matched to the profile clock: whole profile)'}: ${p.busyMs.toFixed(0)} ms busy, ${p.idleMs.toFixed(0)} ms idle, ${p.cpuUsPerRequest !== null ? `${us(p.cpuUsPerRequest)} of main-thread CPU per request` : ''}. The profile is kept at \`${p.file}\` (open it in Chrome DevTools → Performance, or VS Code).`,
    '',
    'Self time by area (each function\'s own time, callees excluded, grouped by where its code lives):',
    '',
    '| area | self time | share of busy time | what would shrink it |',
    '|---|---|---|---|',
  );
  for (const area of p.areas.filter((a) => a.share >= 0.01)) {
    push(`| ${area.area} | ${area.selfMs.toFixed(0)} ms | ${pct(area.share)} | ${remedyFor(area.area) ?? ''} |`);
  }
  if (p.modules.length > 0) {
    push(
      '',
      "Inclusive time under Drawbridge's own modules (a sample counts for the innermost `src/<module>/` frame on its stack; synchronous stacks only, so a reply a library parses later in its own callback is charged to the library). This is the profile's view of what each part of the hot path costs, steadier than the on/off throughput rows on a noisy machine:",
      '',
      '| module | inclusive time | share of busy time |',
      '|---|---|---|',
      ...p.modules.map((x) => `| \`src/${x.module}\` | ${x.ms.toFixed(0)} ms | ${pct(x.share)} |`),
    );
  }
  if (p.writeCallers.length > 0) {
    push(
      '',
      'The socket writes are syscalls made on the main thread; on loopback the sender also pays the receiving side\'s TCP processing and wake-up. Charged to the code that made them:',
      '',
      '| write made by | self time | share of busy time |',
      '|---|---|---|',
      ...p.writeCallers.map((c) => `| ${c.caller} | ${c.selfMs.toFixed(0)} ms | ${pct(c.share)} |`),
    );
  }
  push('', `Top ${p.top.length} functions by self time:`, '', '| # | function | where | area | self time | share |', '|---|---|---|---|---|---|');
  p.top.forEach((entry, i) => push(`| ${i + 1} | \`${entry.name}\` | ${entry.where} | ${entry.area} | ${entry.selfMs.toFixed(0)} ms | ${pct(entry.share)} |`));
  push('');
  return `${lines.join('\n')}\n`;
}

function moduleShare(r: BenchResults, modules: string[]): number {
  return r.profile.modules.filter((m) => modules.includes(m.module)).reduce((sum, m) => sum + m.share, 0);
}

function areaShare(r: BenchResults, pattern: RegExp): number {
  return r.profile.areas.filter((a) => pattern.test(a.area)).reduce((sum, a) => sum + a.share, 0);
}

function kindLabel(kind: string): string {
  if (kind === '(closure anonymous)') return 'anonymous closures';
  if (kind === '(closure native_bind)') return 'bound functions';
  if (kind === 'system / Context') return 'closure contexts';
  return `\`${kind}\``;
}

function explainMiss(miss: TargetCheck, r: BenchResults): string[] {
  const t = r.throughput.targets;
  const g = t.G!;
  const b1 = t.B1!;
  const off = t['G-off']!;
  const usageOff = t['G-usage-off']!;
  const topAreas = r.profile.areas
    .filter((a) => !/\(program\)|^other$/.test(a.area))
    .slice(0, 5)
    .map((a) => `${a.area} ${pct(a.share)}`)
    .join(', ');
  const cpuLine = `G's process spends ${us(g.cpuUsPerRequest)} of CPU per request where the floor proxy spends ${us(b1.cpuUsPerRequest)} (G-off ${us(off.cpuUsPerRequest)}, G-usage-off ${us(usageOff.cpuUsPerRequest)}).`;
  const head = `### ${miss.figure}: ${miss.value} (target ${miss.target})`;
  switch (miss.id) {
    case 'latency_p50':
    case 'latency_p99': {
      const rtt = r.redisRtt;
      const w = r.waits.nonStreaming;
      const q = miss.id === 'latency_p50' ? 'p50' : 'p99';
      const b0 = r.latency.targets.B0[q];
      return [
        head,
        '',
        'At concurrency 1 every step is on the critical path: G\'s own work, and its waits on Redis and on the upstream. ' +
          `In the waits run, at ${q}: the client saw ${ms(w.client[q])}; G waited ${ms(Math.max(w.rateLimit[q], w.slot[q]))} on Redis (the rate-limit script and the slot lease, sent together) and ${ms(w.upstream[q])} on the upstream, which answers the client directly in ${ms(b0)} (B0). B1 waits on the upstream only. ` +
          (q === 'p50'
            ? `The floor's own hop (B1 − B0: ${signedMs(r.latency.added.B1.p50)}) and that Redis wait come to ${ms(r.latency.added.B1.p50 + Math.max(w.rateLimit.p50, w.slot.p50))}${r.latency.added.B1.p50 + Math.max(w.rateLimit.p50, w.slot.p50) > 0.4 ? ', already more than the 0.4 ms budget' : ' of the 0.4 ms budget'}; the rest of G's added time is its own work. A script call from a bare Node client took ${us(rtt.busyP50Us)} at p50 back to back and ${us(rtt.idleP50Us)} after 20 ms of idleness. `
            : 'The tail is the sum of those two waits\' tails: each request crosses four processes (client, G, Redis, upstream) where B1\'s cross three, on two cores shared with Postgres writing the usage batches, and a process that is not running when its reply lands waits for the scheduler. ') +
          'What would close it: Redis on its own core or over a Unix socket (`REDIS_URL=/path/to/redis.sock`), or a local pre-admission for keys far below their limit (giving up the exact fleet-wide window).',
      ];
    }
    case 'throughput_vs_floor':
    case 'throughput_absolute':
      return [
        head,
        '',
        `G is CPU-bound on one core (Node's main thread) while autocannon, the upstream, Redis and Postgres share the other. ${cpuLine} ` +
          `A single thread at ${us(g.cpuUsPerRequest)} per request tops out near ${rate(1e6 / g.cpuUsPerRequest)}, before counting the cores the rest of the set-up takes. ` +
          `The profile puts G's busy time mostly in: ${topAreas}. ` +
          `The web framework is not what limits it: completions are served from node:http ahead of Express and Nest (CompletionsFastLane), and NestJS, Express and RxJS together take ${pct(areaShare(r, /^(NestJS|Express|RxJS)/))} of G's busy time under this load, so swapping in the Fastify adapter could win no more than that. ` +
          'Per-request CPU has to come down (see the areas table), or the gateway has to run more than one process (Node cluster / replicas behind one port) to use both cores; on this 2-core box the load generator and upstream need a core too.',
      ];
    case 'auth_rate_limit_usage_cost':
      return [
        head,
        '',
        `Turning key auth, the rate-limit store and usage recording into no-ops raises throughput from ${rate(g.rps)} to ${rate(off.rps)} and lowers G's CPU per request from ${us(g.cpuUsPerRequest)} to ${us(off.cpuUsPerRequest)}. ` +
          `Usage alone accounts for ${pct(r.throughput.usageCost)} (G-usage-off ${rate(usageOff.rps)}), mostly Postgres's own CPU on the shared cores; the rest is the SHA-256 + key-cache lookup and, mostly, the rate-limit script per request (ioredis command encoding, reply parsing, plus Redis's own CPU on the shared cores).`,
      ];
    case 'ttft_p99': {
      const w = r.waits.streams;
      return [
        head,
        '',
        `Before the first token G authenticates, parses and validates the body, runs the rate-limit script and takes a slot (one Redis round trip, the two overlapping) and opens the upstream stream; B1 only forwards bytes. ` +
          `In the waits run the Redis step took ${ms(Math.max(w.rateLimit.p50, w.slot.p50))} at p50 and ${ms(Math.max(w.rateLimit.p99, w.slot.p99))} at p99, and the upstream's first chunk, seen from G, ${ms(w.upstream.p50)} / ${ms(w.upstream.p99)}. ` +
          `A stream starts after its processes have idled between chunks, and an idle round trip costs more: a Redis script call took ${us(r.redisRtt.idleP50Us)} at p50 after 20 ms of idleness against ${us(r.redisRtt.busyP50Us)} back to back. ` +
          `The floor, with one hand-off fewer than G, added ${signedMs(r.streams.added.B1.ttftP99, 2)} at p99${r.streams.added.B1.ttftP99 > 1 ? ', itself more than the target' : ''}. ` +
          'The slot lease has to be granted by Redis before the upstream call (that is what keeps fleet-wide upstream concurrency exact), so with REDIS_URL set one idle round trip is the floor of the added time to first token.',
      ];
    }
    case 'chunk_gap_p99':
      return [
        head,
        '',
        `Every chunk goes through G's SSE parser, JSON.parse, usage observation, JSON.stringify and a socket write; B1 passes the bytes on. Gaps are 20 ms timer-driven on the upstream, and the p99 also holds scheduling jitter of the shared machine: the floor proxy, which does nothing per chunk, added ${signedMs(r.streams.added.B1.gapP99, 2)}, and G ${signedMs(r.streams.added.G.gapP99 - r.streams.added.B1.gapP99, 2)} over the floor. ` +
          "G's own part is its work per chunk: the event is parsed, observed for usage and serialised again, and the short-lived objects that leaves fill the young generation, collected every few hundred ms while streams run, a pause of about a millisecond that every chunk arriving meanwhile waits out (`PROBE_STREAMS=1 PROBE_ALLOC=1 npm run bench:probe` writes an allocation profile of a stream round). " +
          'What would close it: relaying the upstream\'s bytes with only `model` patched in place of JSON.parse + JSON.stringify per chunk, and fewer processes sharing the two cores.',
      ];
    case 'memory_per_1000_streams':
    case 'memory_after_streams': {
      const m = r.memory;
      const live = ((m.heap.second.heapUsed - m.heap.idle.heapUsed) / 2 ** 20 / Math.max(1, m.second.open)) * 1000;
      const left = (m.heap.later.heapUsed - m.heap.idle.heapUsed) / 2 ** 20;
      const kinds = m.heapDiff ? m.heapDiff.top.slice(0, 6).map((g) => `\`${g.kind.slice(0, 60)}\` ${(g.bytes / m.heapDiff!.streams / 1024).toFixed(1)} KB`).join(', ') : '';
      const perStream = m.heapDiff ? m.heapDiff.top.filter((g) => /^\(closure|^system \/ Context$|^Promise$|^OperatorSubscriber$|^Generator$/.test(g.kind)) : [];
      return [
        head,
        '',
        `Live V8 heap (after a full GC) is ${mb(live)} per 1,000 open streams, so the JS objects each stream keeps alive are most of the cost; the rest is V8 keeping the grown heap reserved and native memory (two sockets per stream, their parsers). ` +
          (kinds ? `The heap snapshots name what grows per stream: ${kinds}. ` : '') +
          (perStream.length > 0
            ? `Per open stream that is about ${perStream.map((g) => `${Math.round(g.count / m.heapDiff!.streams)} ${kindLabel(g.kind)}`).join(', ')}: closures, their contexts and promises held for the life of the request. `
            : '') +
          `Once the streams had ended and the idle upstream connections had closed, the live heap was ${mb(left)} above idle${left > 10 ? ': something outlives the streams (a cache, a queue, or listeners never removed), worth a closer look' : ', so nothing measurable outlives the streams'}. ` +
          'Fewer objects held per in-flight request shrink it: one closure where several are created per request (listeners, callbacks bound per request).',
      ];
    }
    default:
      return [head];
  }
}
