/*
 * `npm run bench` (DESIGN §7): the same load against B0 (the fake upstream directly), B1 (the
 * floor proxy) and G (Drawbridge with everything on), each in its own process, autocannon and the
 * SSE client here. Rounds are interleaved between targets (the order rotates each round) and the
 * median of the round figures is reported. Writes bench/results.json and bench/RESULTS.md.
 *
 * BENCH_QUICK=1 runs a one-minute version (a smoke test of the harness; its figures mean
 * nothing). BENCH_OUT_DIR changes where the report goes (default ./bench). BENCH_HEAP_SNAPSHOTS=1
 * takes the heap snapshots even when the memory figure passes.
 */
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { summarizeProfile } from './cpu-profile';
import {
  cpuMs,
  gitState,
  load,
  started,
  log,
  median,
  metricValue,
  openFileLimit,
  quantile,
  redisRoundTrips,
  REPLY_TEXT,
  rotated,
  Run,
  scrape,
  sleep,
  smokeTest,
  syscalls,
  streamTarget,
  Target,
  TargetName,
} from './harness';
import { diffHeapSnapshots, type HeapDiff } from './heap-snapshot';
import { BenchResults, evaluate, renderMarkdown, Round, Spread, ThroughputTarget } from './report';
import type { WaitSamples } from './wait-timer';
import { runStreams, StreamFleet } from './sse-client';

// ---- settings ----

const QUICK = process.env.BENCH_QUICK === '1';
const SETTINGS = {
  latency: { rounds: QUICK ? 2 : 5, seconds: QUICK ? 1 : 3, connections: 1 },
  throughput: { rounds: QUICK ? 2 : 6, seconds: QUICK ? 1 : 4, connections: 50 },
  streams: { rounds: QUICK ? 1 : 3, streams: QUICK ? 20 : 50, concurrency: 10, chunks: 64, chunkDelayMs: 20 },
  // 16 chunks 2 s apart: each stream lives ~32 s, long enough to open 5,000 and read RSS, at a
  // chunk rate (2,500/s at 5,000 streams) that leaves G's thread mostly idle, so what is measured
  // is memory per open stream rather than a relay backlog.
  memory: { first: QUICK ? 200 : 1000, second: QUICK ? 500 : 5000, chunks: 16, chunkDelayMs: QUICK ? 500 : 2000, heapSnapshotStreams: QUICK ? 200 : 1000, idleWaitMs: QUICK ? 5000 : 65_000 },
  profile: { seconds: QUICK ? 2 : 5 },
  warmupSeconds: QUICK ? 1 : 3,
};
const OUT_DIR = resolve(process.env.BENCH_OUT_DIR ?? join(process.cwd(), 'bench'));
const ROOT = resolve(OUT_DIR, '..');

async function main(): Promise<void> {
  const run = new Run();
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${signal}: stopping every child process and dropping the bench database`);
    void run.cleanup(true).finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const cpus = os.cpus();
  const machine: BenchResults['machine'] = {
    cores: cpus.length,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    memoryGb: Math.round(os.totalmem() / 2 ** 30),
    loadAverageAtStart: os.loadavg().map((l) => Math.round(l * 100) / 100),
    loadAverageAtEnd: [],
    openFileLimit: openFileLimit(),
  };
  const date = new Date().toISOString();
  const git = gitState(ROOT);
  log(`machine: ${machine.cores} cores, ${machine.cpuModel}, Node ${machine.node}, load ${machine.loadAverageAtStart.join(' ')}${QUICK ? ' (QUICK MODE: figures mean nothing)' : ''}`);
  log(`logs of the target processes: ${run.logDir}`);
  log(`code measured: commit ${git.commit}${git.changedFiles.length ? ` + uncommitted changes in ${git.changedFiles.join(', ')}` : ''}`);

  try {
    // ---- set-up ----
    log(`set-up: database ${run.database} (created and migrated), Redis prefix ${run.redisPrefix}`);
    await run.createDatabase();
    const upstreamSettings = { text: REPLY_TEXT, chunks: SETTINGS.streams.chunks, chunkDelayMs: SETTINGS.streams.chunkDelayMs };
    const { child: upstream, ready: upstreamReady } = await run.spawn('upstream', 'upstream-server.js', [JSON.stringify(upstreamSettings)]);
    const upstreamUrl = upstreamReady.url as string;
    const upstreamOrigin = new URL(upstreamUrl).origin;
    const { child: floor, ready: floorReady } = await run.spawn('floor-proxy', 'floor-proxy.js', [upstreamOrigin]);
    log(`set-up: B0 upstream ${upstreamOrigin} (pid ${upstream.pid}), B1 floor proxy ${floorReady.url as string} (pid ${floor.pid})`);
    const g = await run.startGateway('G', 'full', upstreamUrl);
    log(`set-up: G ${g.url} (pid ${g.child.pid})`);
    const gOff = await run.startGateway('G-off', 'auth-rl-usage-off', upstreamUrl);
    log(`set-up: G-off (auth, rate limit, usage off) ${gOff.url} (pid ${gOff.child.pid})`);
    const gUsageOff = await run.startGateway('G-usage-off', 'usage-off', upstreamUrl);
    log(`set-up: G-usage-off (usage writes off) ${gUsageOff.url} (pid ${gUsageOff.child.pid})`);
    // G-off and G-usage-off are built through the testing module; so is this otherwise identical
    // G, their like-for-like baseline. G vs G-factory also shows how far two processes of the same
    // code differ: the noise floor the cost rows have to clear.
    const gFactory = await run.startGateway('G-factory', 'full-via-factory', upstreamUrl);
    log(`set-up: G-factory (G built through the same factory as the variants) ${gFactory.url} (pid ${gFactory.child.pid})`);

    const upstreamHeaders = { authorization: 'Bearer sk-bench-direct' };
    const targets: Record<TargetName, Target> = {
      B0: { name: 'B0', url: `${upstreamUrl}/chat/completions`, headers: upstreamHeaders, process: upstream },
      B1: { name: 'B1', url: `${floorReady.url as string}/v1/chat/completions`, headers: upstreamHeaders, process: floor },
      G: { name: 'G', url: `${g.url}/v1/chat/completions`, headers: { authorization: `Bearer ${g.key}` }, process: g.child },
      'G-off': { name: 'G-off', url: `${gOff.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gOff.key}` }, process: gOff.child },
      'G-usage-off': { name: 'G-usage-off', url: `${gUsageOff.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gUsageOff.key}` }, process: gUsageOff.child },
      'G-factory': { name: 'G-factory', url: `${gFactory.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gFactory.key}` }, process: gFactory.child },
    };
    const all = Object.values(targets);
    const core = [targets.B0, targets.B1, targets.G];
    for (const target of all) await smokeTest(target);

    // ---- warm-up ----
    log(`warm-up: ${SETTINGS.warmupSeconds} s at concurrency 50 per target, 20 streams per B0/B1/G`);
    for (const target of all) await load(target, 50, SETTINGS.warmupSeconds, false);
    for (const target of core) await runStreams(streamTarget(target), 20, 10);

    // ---- added latency, concurrency 1 ----
    const latency: Record<string, Round[]> = { B0: [], B1: [], G: [] };
    for (let r = 0; r < SETTINGS.latency.rounds; r++) {
      for (const target of rotated(core, r)) {
        const res = await load(target, 1, SETTINGS.latency.seconds, true);
        const round: Round = { p50: quantile(res.latencies, 0.5), p99: quantile(res.latencies, 0.99), n: res.latencies.length, errors: res.errors + res.non2xx };
        latency[target.name]!.push(round);
        log(`latency c=1 round ${r + 1}/${SETTINGS.latency.rounds} ${target.name.padEnd(2)}: p50 ${round.p50.toFixed(3)} ms, p99 ${round.p99.toFixed(3)} ms (${round.n} requests${round.errors ? `, ${round.errors} errors` : ''})`);
      }
    }

    // ---- throughput, concurrency 50 ----
    const throughput: Record<string, ThroughputTarget['rounds']> = {};
    const eventLoopP99: number[] = [];
    const upstreamCpu: number[] = [];
    for (const target of all) throughput[target.name] = [];
    const metricsUrl = `${g.url}/metrics`;
    for (let r = 0; r < SETTINGS.throughput.rounds; r++) {
      for (const target of rotated(all, r)) {
        if (target.name === 'G') await scrape(metricsUrl); // prom-client resets its event-loop histogram on each scrape
        const cpuBefore = cpuMs(target.process.pid);
        const callsBefore = syscalls(target.process.pid);
        const upstreamBefore = cpuMs(upstream.pid);
        const res = await load(target, SETTINGS.throughput.connections, SETTINGS.throughput.seconds, false);
        const cpuUsPerRequest = res.ok > 0 ? ((cpuMs(target.process.pid) - cpuBefore) * 1000) / res.ok : Number.NaN;
        const callsAfter = syscalls(target.process.pid);
        const perRequest = (n: number): number => (res.ok > 0 ? n / res.ok : Number.NaN);
        if (res.ok > 0) upstreamCpu.push(((cpuMs(upstream.pid) - upstreamBefore) * 1000) / res.ok);
        let extra = '';
        if (target.name === 'G') {
          const lag = metricValue(await scrape(metricsUrl), 'nodejs_eventloop_lag_p99_seconds');
          if (lag !== undefined) {
            eventLoopP99.push(lag * 1000);
            extra = `, event-loop p99 ${(lag * 1000).toFixed(1)} ms`;
          }
        }
        throughput[target.name]!.push({
          rps: res.rps,
          errors: res.errors + res.non2xx,
          cpuUsPerRequest,
          writesPerRequest: perRequest(callsAfter.writes - callsBefore.writes),
          readsPerRequest: perRequest(callsAfter.reads - callsBefore.reads),
        });
        log(`throughput c=50 round ${r + 1}/${SETTINGS.throughput.rounds} ${target.name.padEnd(11)}: ${Math.round(res.rps)} req/s, ${Math.round(cpuUsPerRequest)} µs CPU/request in its process${res.errors + res.non2xx ? `, ${res.errors} errors, ${res.non2xx} non-2xx` : ''}${extra}`);
      }
    }
    const gMetrics = await scrape(metricsUrl);
    const overheadSum = metricValue(gMetrics, 'drawbridge_gateway_overhead_seconds_sum');
    const overheadCount = metricValue(gMetrics, 'drawbridge_gateway_overhead_seconds_count');

    // ---- Redis round trips (evidence for the waiting part of G's latency) ----
    const redisRtt = await redisRoundTrips();
    log(`Redis round trip (one script call): back to back p50 ${Math.round(redisRtt.busyP50Us)} µs, after 20 ms idle p50 ${Math.round(redisRtt.idleP50Us)} µs`);

    // ---- streams ----
    const streams: Record<string, Array<{ ttftP50: number; ttftP99: number; gapP50: number; gapP99: number; failed: number; errors: string[] }>> = { B0: [], B1: [], G: [] };
    const pooled: Record<string, { ttft: number[]; gaps: number[] }> = { B0: { ttft: [], gaps: [] }, B1: { ttft: [], gaps: [] }, G: { ttft: [], gaps: [] } };
    for (let r = 0; r < SETTINGS.streams.rounds; r++) {
      for (const target of rotated(core, r)) {
        const timings = await runStreams(streamTarget(target), SETTINGS.streams.streams, SETTINGS.streams.concurrency);
        const good = timings.filter((t) => t.ok && t.contentEvents === SETTINGS.streams.chunks);
        const ttft = good.map((t) => t.ttftMs);
        const gaps = good.flatMap((t) => t.gapsMs);
        pooled[target.name]!.ttft.push(...ttft);
        pooled[target.name]!.gaps.push(...gaps);
        const errors = [...new Set(timings.filter((t) => !t.ok || t.contentEvents !== SETTINGS.streams.chunks).map((t) => t.error ?? `${t.contentEvents} content events`))];
        const round = { ttftP50: quantile(ttft, 0.5), ttftP99: quantile(ttft, 0.99), gapP50: quantile(gaps, 0.5), gapP99: quantile(gaps, 0.99), failed: timings.length - good.length, errors };
        streams[target.name]!.push(round);
        log(`streams round ${r + 1}/${SETTINGS.streams.rounds} ${target.name.padEnd(2)}: TTFT p50 ${round.ttftP50.toFixed(2)} p99 ${round.ttftP99.toFixed(2)} ms, gap p50 ${round.gapP50.toFixed(2)} p99 ${round.gapP99.toFixed(2)} ms${round.failed ? `, ${round.failed} failed (${errors.join('; ')})` : ''}`);
      }
    }

    // ---- what G waits on: evidence for the latency rows (after its measured rounds) ----
    log('waits: G times its Redis and upstream waits from here on; one more c=1 run and one more stream round');
    const gTarget = core.find((t) => t.name === 'G')!;
    await g.child.call('takeWaits');
    const waitLatency = await load(gTarget, 1, SETTINGS.latency.seconds, true);
    const nonStreamingWaits = (await g.child.call('takeWaits')) as WaitSamples;
    const waitStreams = (await runStreams(streamTarget(gTarget), SETTINGS.streams.streams, SETTINGS.streams.concurrency)).filter((t) => t.ok);
    const streamingWaits = (await g.child.call('takeWaits')) as WaitSamples;
    const waits = {
      nonStreaming: { client: spread(waitLatency.latencies), ...spreadEach(nonStreamingWaits) },
      streams: { client: spread(waitStreams.map((t) => t.ttftMs)), ...spreadEach(streamingWaits) },
    };
    for (const [kind, w] of Object.entries(waits)) {
      log(`waits ${kind}: client ${fmtSpread(w.client)}; rate limit ${fmtSpread(w.rateLimit)}; slot ${fmtSpread(w.slot)}; upstream ${fmtSpread(w.upstream)}`);
    }

    log('stopping B1 and every G');
    for (const child of [floor, g.child, gOff.child, gUsageOff.child, gFactory.child]) await run.stop(child);

    // ---- CPU profile of G under the throughput load ----
    const profileDir = join(run.logDir, 'profile');
    mkdirSync(profileDir, { recursive: true });
    log(`profile: a fresh G under node --cpu-prof, ${SETTINGS.profile.seconds} s at concurrency 50 after a ${SETTINGS.warmupSeconds} s warm-up`);
    const gProf = await run.startGateway('G-cpu-prof', 'full', upstreamUrl, ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', 'g-throughput.cpuprofile']);
    const profTarget: Target = { name: 'G', url: `${gProf.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gProf.key}` }, process: gProf.child };
    await load(profTarget, 50, SETTINGS.warmupSeconds, false);
    const from = await gProf.child.call<number>('mark');
    const profRun = await load(profTarget, 50, SETTINGS.profile.seconds, false);
    const to = await gProf.child.call<number>('mark');
    await run.stop(gProf.child);
    const profilePath = join(profileDir, 'g-throughput.cpuprofile');
    if (!existsSync(profilePath)) throw new Error(`no CPU profile was written at ${profilePath}`);
    const summary = summarizeProfile(profilePath, ROOT, from, to);
    mkdirSync(join(OUT_DIR, 'results'), { recursive: true });
    const keptProfile = join(OUT_DIR, 'results', 'g-throughput.cpuprofile');
    copyFileSync(profilePath, keptProfile);
    log(`profile: ${Math.round(profRun.rps)} req/s under the profiler; ${summary.samples} samples, busy ${summary.busyMs.toFixed(0)} ms of ${summary.windowMs.toFixed(0)} ms; top area ${summary.areas[0]?.area ?? '-'}`);

    // ---- memory per concurrent stream ----
    log(`memory: a fresh G (--expose-gc); streams of ${SETTINGS.memory.chunks} chunks at ${SETTINGS.memory.chunkDelayMs} ms`);
    const gMem = await run.startGateway('G-memory', 'full', upstreamUrl, ['--expose-gc']);
    const memTarget: Target = { name: 'G', url: `${gMem.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gMem.key}` }, process: gMem.child };
    await upstream.call('set', { chunkDelayMs: 0 });
    await load(memTarget, 50, SETTINGS.warmupSeconds, false);
    await runStreams(streamTarget(memTarget), 200, 20);
    await upstream.call('set', { chunks: SETTINGS.memory.chunks, chunkDelayMs: SETTINGS.memory.chunkDelayMs });
    const settledRss = async (): Promise<number> => {
      await sleep(1000);
      const reads: number[] = [];
      for (let i = 0; i < 3; i++) {
        reads.push(gMem.child.rssMb());
        await sleep(300);
      }
      return median(reads);
    };
    await gMem.child.call('gc');
    const idleMb = await settledRss();
    const idleFds = gMem.child.openFds();
    const idleHeap = await gMem.child.call<NodeJS.MemoryUsage>('memory');
    log(`memory: idle RSS ${idleMb.toFixed(1)} MB, ${idleFds} open fds`);
    const fleet = new StreamFleet(streamTarget(memTarget));
    const streamLifeMs = SETTINGS.memory.chunks * SETTINGS.memory.chunkDelayMs;
    const fleetStart = Date.now();
    await fleet.add(SETTINGS.memory.first);
    const firstMb = await settledRss();
    const firstOpen = fleet.open;
    const firstFds = gMem.child.openFds();
    log(`memory: ${firstOpen} streams open (${fleet.started} started, ${fleet.failed} failed): RSS ${firstMb.toFixed(1)} MB, ${firstFds} fds`);
    await fleet.add(SETTINGS.memory.second - SETTINGS.memory.first);
    const secondMb = await settledRss();
    const secondOpen = fleet.open;
    const secondFds = gMem.child.openFds();
    const secondAtMs = Date.now() - fleetStart;
    // After the RSS reads, so the forced collection does not flatter them: the live heap per stream.
    await gMem.child.call('gc');
    const secondHeap = await gMem.child.call<NodeJS.MemoryUsage>('memory');
    log(`memory: ${secondOpen} streams open (${fleet.started} started, ${fleet.failed} failed) ${(secondAtMs / 1000).toFixed(1)} s after the first: RSS ${secondMb.toFixed(1)} MB, ${secondFds} fds`);
    const allEnded = await fleet.settle(streamLifeMs + 60_000);
    if (!allEnded) fleet.close();
    const afterMb = await settledRss();
    const afterFds = gMem.child.openFds();
    await gMem.child.call('gc');
    const afterGcMb = await settledRss();
    const afterHeap = await gMem.child.call<NodeJS.MemoryUsage>('memory');
    log(`memory: streams ended (${fleet.ended}/${fleet.opened}, ${fleet.failed} failed${allEnded ? '' : ', some cut after the timeout'}): RSS ${afterMb.toFixed(1)} MB, ${afterGcMb.toFixed(1)} MB after a full GC, ${afterFds} fds`);
    // Idle keep-alive connections to the upstream outlive the streams (undici keeps them as long
    // as the server's Keep-Alive hint allows): wait for them to close, then read once more.
    const idleWaitStart = Date.now();
    while (gMem.child.openFds() > idleFds + 20 && Date.now() - idleWaitStart < SETTINGS.memory.idleWaitMs) await sleep(1000);
    await gMem.child.call('gc');
    const laterMb = await settledRss();
    const laterFds = gMem.child.openFds();
    const laterHeap = await gMem.child.call<NodeJS.MemoryUsage>('memory');
    const laterWaitS = (Date.now() - idleWaitStart) / 1000;
    log(`memory: ${laterWaitS.toFixed(0)} s later (${laterFds} fds): RSS ${laterMb.toFixed(1)} MB after a full GC`);
    await run.stop(gMem.child);
    const perThousand = (rss: number, streams: number): number => ((rss - idleMb) * 1000) / streams;
    const memoryMissed = Math.max(perThousand(firstMb, SETTINGS.memory.first), perThousand(secondMb, SETTINGS.memory.second)) > 35 || laterMb - idleMb > 35;

    // ---- what the streams hold: heap snapshots, only when the memory figure missed ----
    let heapDiff: HeapDiff | null = null;
    if (memoryMissed || process.env.BENCH_HEAP_SNAPSHOTS === '1') {
      const n = SETTINGS.memory.heapSnapshotStreams;
      log(`memory: ${memoryMissed ? 'missed' : 'passed'}; heap snapshots of another fresh G, idle and with ${n} streams open, to see what a stream holds`);
      const gHeap = await run.startGateway('G-heap', 'full', upstreamUrl);
      const heapTarget: Target = { name: 'G', url: `${gHeap.url}/v1/chat/completions`, headers: { authorization: `Bearer ${gHeap.key}` }, process: gHeap.child };
      await upstream.call('set', { chunkDelayMs: 0 });
      await load(heapTarget, 50, SETTINGS.warmupSeconds, false);
      await runStreams(streamTarget(heapTarget), 200, 20);
      await upstream.call('set', { chunkDelayMs: SETTINGS.memory.chunkDelayMs });
      const before = join(run.logDir, 'g-idle.heapsnapshot');
      const after = join(run.logDir, `g-${n}-streams.heapsnapshot`);
      await gHeap.child.call('heapSnapshot', before, 120_000);
      const heapFleet = new StreamFleet(streamTarget(heapTarget));
      await heapFleet.add(n);
      await sleep(1000);
      await gHeap.child.call('heapSnapshot', after, 120_000);
      heapFleet.close();
      await run.stop(gHeap.child);
      heapDiff = diffHeapSnapshots(before, after);
      log(`memory: heap grew by ${((heapDiff.afterBytes - heapDiff.beforeBytes) / 2 ** 20).toFixed(1)} MB with ${n} streams; largest: ${heapDiff.top.slice(0, 3).map((g) => g.kind).join(', ')}`);
      rmSync(before, { force: true });
      rmSync(after, { force: true });
    }
    await upstream.call('set', { chunks: SETTINGS.streams.chunks, chunkDelayMs: SETTINGS.streams.chunkDelayMs });

    // ---- report ----
    const summarizeLatency = (name: string) => ({
      rounds: latency[name]!,
      p50: median(latency[name]!.map((r) => r.p50)),
      p99: median(latency[name]!.map((r) => r.p99)),
    });
    const lat = { B0: summarizeLatency('B0'), B1: summarizeLatency('B1'), G: summarizeLatency('G') };
    const rps = (name: TargetName): number => median(throughput[name]!.map((r) => r.rps));
    const cpuPer = (name: TargetName): number => median(throughput[name]!.map((r) => r.cpuUsPerRequest));
    const callsPer = (name: TargetName) => ({
      writesPerRequest: median(throughput[name]!.map((r) => r.writesPerRequest)),
      readsPerRequest: median(throughput[name]!.map((r) => r.readsPerRequest)),
    });
    const streamSummary = (name: string) => ({
      rounds: streams[name]!,
      ttftP50: median(streams[name]!.map((r) => r.ttftP50)),
      ttftP99: median(streams[name]!.map((r) => r.ttftP99)),
      gapP50: median(streams[name]!.map((r) => r.gapP50)),
      gapP99: median(streams[name]!.map((r) => r.gapP99)),
      pooledTtftP99: quantile(pooled[name]!.ttft, 0.99),
      pooledGapP99: quantile(pooled[name]!.gaps, 0.99),
      failed: streams[name]!.reduce((n, r) => n + r.failed, 0),
    });
    const st = { B0: streamSummary('B0'), B1: streamSummary('B1'), G: streamSummary('G') };

    machine.loadAverageAtEnd = os.loadavg().map((l) => Math.round(l * 100) / 100);
    const results: BenchResults = {
      date,
      quick: QUICK,
      git,
      durationSeconds: Math.round((Date.now() - started) / 1000),
      machine,
      settings: SETTINGS,
      latency: {
        targets: lat,
        added: {
          G: { p50: lat.G.p50 - lat.B0.p50, p99: lat.G.p99 - lat.B0.p99 },
          B1: { p50: lat.B1.p50 - lat.B0.p50, p99: lat.B1.p99 - lat.B0.p99 },
        },
      },
      throughput: {
        targets: Object.fromEntries(all.map((t) => [t.name, { rounds: throughput[t.name]!, rps: rps(t.name), cpuUsPerRequest: cpuPer(t.name), ...callsPer(t.name) }])),
        upstreamCpuUsPerRequest: median(upstreamCpu),
        gOverB1: rps('G') / rps('B1'),
        authRateLimitUsageCost: 1 - rps('G') / rps('G-off'),
        authRateLimitUsageCpuShare: 1 - cpuPer('G-off') / cpuPer('G'),
        usageCost: 1 - rps('G') / rps('G-usage-off'),
        likeForLikeAuthRateLimitUsageCost: 1 - rps('G-factory') / rps('G-off'),
        likeForLikeAuthRateLimitUsageCpuShare: 1 - cpuPer('G-off') / cpuPer('G-factory'),
        likeForLikeUsageCost: 1 - rps('G-factory') / rps('G-usage-off'),
        factorySpread: 1 - rps('G-factory') / rps('G'),
        factoryCpuSpread: cpuPer('G-factory') / cpuPer('G') - 1,
        gatewayOverheadMeanMs: overheadSum !== undefined && overheadCount ? (overheadSum / overheadCount) * 1000 : null,
      },
      eventLoop: {
        source: 'nodejs_eventloop_lag_p99_seconds from G /metrics, scraped before (reset) and right after each G throughput round',
        rounds: eventLoopP99,
        p99Ms: median(eventLoopP99),
        samplingIntervalMs: 10,
      },
      redisRtt,
      waits,
      streams: {
        targets: st,
        added: {
          G: { ttftP99: st.G.ttftP99 - st.B0.ttftP99, gapP99: st.G.gapP99 - st.B0.gapP99 },
          B1: { ttftP99: st.B1.ttftP99 - st.B0.ttftP99, gapP99: st.B1.gapP99 - st.B0.gapP99 },
        },
      },
      memory: {
        chunkDelayMs: SETTINGS.memory.chunkDelayMs,
        idleMb,
        idleFds,
        first: { streams: SETTINGS.memory.first, open: firstOpen, rssMb: firstMb, perThousandMb: perThousand(firstMb, SETTINGS.memory.first), fds: firstFds },
        second: {
          streams: SETTINGS.memory.second,
          open: secondOpen,
          rssMb: secondMb,
          perThousandMb: perThousand(secondMb, SETTINGS.memory.second),
          secondsAfterFirst: secondAtMs / 1000,
          fds: secondFds,
        },
        afterMb,
        afterFds,
        afterGcMb,
        later: { waitedSeconds: laterWaitS, fds: laterFds, rssMb: laterMb },
        failedStreams: fleet.failed,
        streamErrors: Object.fromEntries(fleet.errors),
        allEndedInTime: allEnded,
        heap: { idle: idleHeap, second: secondHeap, after: afterHeap, later: laterHeap },
        heapDiff: heapDiff && { streams: SETTINGS.memory.heapSnapshotStreams, ...heapDiff },
      },
      profile: {
        file: 'bench/results/g-throughput.cpuprofile',
        requestsPerSecond: profRun.rps,
        cpuUsPerRequest: profRun.ok > 0 ? (summary.busyMs * 1000) / profRun.ok : null,
        ...summary,
      },
      targets: [],
    };
    results.targets = evaluate(results);

    writeFileSync(join(OUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(OUT_DIR, 'RESULTS.md'), renderMarkdown(results));
    log(`wrote ${join(OUT_DIR, 'RESULTS.md')} and results.json; CPU profile kept at ${keptProfile}`);
    for (const target of results.targets) log(`${target.pass === null ? 'INFO' : target.pass ? 'PASS' : 'MISS'} ${target.figure}: ${target.value} (target ${target.target})`);
  } finally {
    log('clean-up: stopping every child process, dropping the bench database, deleting Redis keys');
    await run.cleanup(false);
  }
  log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** p50, p90 and p99 of some ms samples, and how many. */
function spread(values: readonly number[]): Spread {
  return { n: values.length, p50: quantile(values, 0.5), p90: quantile(values, 0.9), p99: quantile(values, 0.99) };
}

function spreadEach(samples: WaitSamples): Record<keyof WaitSamples, Spread> {
  return { rateLimit: spread(samples.rateLimit), slot: spread(samples.slot), upstream: spread(samples.upstream) };
}

function fmtSpread(s: Spread): string {
  return `p50 ${s.p50.toFixed(3)} p90 ${s.p90.toFixed(3)} p99 ${s.p99.toFixed(3)} ms (n ${s.n})`;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  },
);
