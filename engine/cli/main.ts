/**
 * `headlens` — the engine's command line. Exact contracts (scripts depend on them):
 *   headlens info    [--model P] [--config C] [--json]
 *   headlens forward --model P [--config C] --ids IDS.json [--t '[..]'] --out OUT.safetensors
 *   headlens analyze [--model P] [--config C] (--text-file F | --text S) [--json OUT.json] [--html OUT.html]
 *   headlens train   … (see engine/train/cli.ts)
 *   headlens serve   (JSON lines on stdio, protocol.ts)
 * Common: --backend auto|tensorflow-gpu|tensorflow|webgpu|wasm|cpu, --debug.
 * Exit codes: 0 ok, 2 bad input (one line on stderr naming the file/value), 1 internal.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AnalyzeEvent, ExplorerData, TokenInfo } from '../protocol';
import { BadInputError, reportError } from '../errors';
import { analyzeText } from '../analysis/analyze';
import { modelInfo, tokenizerFor } from '../runtime/loaded';
import { backendOf, readModel, setupModel } from './load';
import { initRuntime } from '../runtime/select';
import { familyDef } from '../models/registry';
import { EngineServer } from '../server/server';
import { EngineService } from '../server/service';
import { writeSafetensors } from '../io/safetensors';
import type { HostTensor } from '../io/tensor';
import { parseArgs, type ArgSpec } from './args';
import { formatTokenTable } from './table';
import { runBench } from './bench';
import { runInstallGpu, runInstallNative } from '../runtime/install';
import { runCompare, runEval } from './eval';
import { readIds } from './ids';
import { headRolesReport, runAblate, runSweep } from './interventions';
export { readIds };
import { runTrainCommand } from '../train/cli';
import { runTrainBench } from '../train/bench';
import { runReadersBench } from './readersBench';
import { runTloraEval } from './tlora';
import { runPonder } from './ponder';
import { runTttCommand } from './ttt';
import { runGridCommand } from './grid';

const USAGE = `usage: headlens <command> [options]
  info     [--model P] [--config C] [--json] [--heads]    family, config, parameter count, backend; --heads: head roles
  forward  --model P [--config C] --ids IDS.json [--t '[..]'] --out OUT.safetensors
  analyze  [--model P] [--config C] (--text-file F | --text S) [--json OUT.json] [--html OUT.html]
           [--window N] [--stride S] [--audit N] [--lens] [--report-layers L,…]
  eval ppl --model P (--text-file F | --data PATH…) [--context N] [--stride S] [--json OUT]
                                             perplexity and bits per byte with Hugging Face's sliding window
  eval mc  --model P --data FILE.jsonl [--limit N] [--json OUT]   multiple choice (HellaSwag scoring)
  compare  --model A --model-b B (--text-file F | --text S) [--json OUT]   ΔNLL per token and by token class
  ablate   --model P (--text-file F | --ids IDS.json) --ablate L.H:mode[,…] [--json OUT]
                                             NLL with heads zeroed, mean-ablated or their adaptive path off
  sweep    --model P --text-file F [--mode zero|mean|adaptive-off] [--unit head|layer] [--json OUT]
  ponder   --model BASE --ttt TTT.safetensors (--text-file F | --ids IDS.json) [--chunk 16] [--target-rate R] [--json OUT]
                                             PonderTTT: UPDATE/SKIP per chunk, signal, τ; ppl gated vs always vs never
                                             (ponder train --model BASE …: train the TTT layer, base frozen)
  ttt      --model P (--text-file F | --ids DOC.json) [--chunk 48] [--eval-len 2048] [--rank 128] [--lr 1e-4] … [--json OUT]
                                             LoRA test-time training per chunk, scored first (parameter-golf #1784; ttt --help)
  tlora-eval --model CKPT [--base BASE] (--text-file F | --text S) [--json OUT]   Temporal LoRA: NLL with the router's mixture vs each adapter alone and the base; dominant adapter per token
  train    see 'headlens train --help'
  serve    JSON-lines protocol on stdin/stdout (used by the VS Code extension)
  export   --model P [--config C] --out OUT.safetensors [--fp16]   weights only (e.g. from a training checkpoint)
  install-native --dir DIR                  install onnxruntime-node (the native inference runtime) on demand
  install-gpu --dir DIR [--tfjs-node-gpu]   install the GPU backend packages on demand and check them
  bench    [--runtimes onnx-cpu:1,onnx-cpu:2,wasm] [--models base,adaptive,…] [--runs N]
                                             analysis medians with full-size models, side by side
  train-bench [--backend B]                  training tokens/s (tiny and full-size)
  readers-bench [--mb 50]                    the run monitor's readers on big JSONL and stdout logs
  grid     SPEC.json [--out DIR] [--plan] | --template autoresearch [--data PATH…]   an experiment grid (resumable)
options: --backend auto|onnx-cuda|onnx-webgpu|onnx-cpu|tensorflow-gpu|tensorflow|webgpu|wasm|cpu
         --threads N (onnxruntime intra-op threads; 0 = the physical cores)   --tokenizer FILE
         --debug (stack traces)
Inference runs on onnxruntime when it is installed (auto: CUDA → WebGPU on a real GPU → CPU), else
TensorFlow.js; training on TensorFlow.js. Without --model the embedded starter model is used.`;

const COMMON: ArgSpec = { backend: 'string', threads: 'int', debug: 'boolean', help: 'boolean', model: 'string', config: 'string', tokenizer: 'string' };

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const debug = argv.includes('--debug');
  try {
    switch (command) {
      case 'info':
        return await cmdInfo(rest);
      case 'forward':
        return await cmdForward(rest);
      case 'analyze':
        return await cmdAnalyze(rest);
      case 'serve':
        return await cmdServe(rest);
      case 'train':
        return await runTrainCommand(rest);
      case 'bench':
        return await runBench(rest);
      case 'train-bench':
        return await runTrainBench(rest);
      case 'readers-bench':
        return await runReadersBench(rest);
      case 'export':
        return await cmdExport(rest);
      case 'install-gpu':
        return await runInstallGpu(rest);
      case 'install-native':
        return await runInstallNative(rest);
      case 'eval':
        return await runEval(rest);
      case 'compare':
        return await runCompare(rest);
      case 'ablate':
        return await runAblate(rest);
      case 'sweep':
        return await runSweep(rest);
      case 'tlora-eval':
        return await runTloraEval(rest);
      case 'ponder':
        return await runPonder(rest);
      case 'ttt':
        return await runTttCommand(rest);
      case 'grid':
        return await runGridCommand(rest);
      case undefined:
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? 2 : 0;
      default:
        throw new BadInputError(`unknown command '${command}': use info, forward, analyze, train or serve (headlens --help)`);
    }
  } catch (e) {
    return reportError(e, debug);
  }
}

const setup = setupModel;

async function cmdInfo(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, json: 'boolean', heads: 'boolean' }, 'info');
  if (opts.help) return usage();
  const ck = await readModel(opts);
  const tk = tokenizerFor((opts.model as string | undefined) ?? null, opts.tokenizer as string | undefined);
  const info = modelInfo(ck, tk.tokenizer.info);
  if (tk.note) info.note = info.note ? `${info.note}; ${tk.note}` : tk.note;
  const backend = (await initRuntime(backendOf(opts), (opts.threads as number | undefined) ?? 0)).info;
  if (opts.json) {
    process.stdout.write(JSON.stringify({ ...info, backend }, null, 2) + '\n');
  } else {
    const c = info.config;
    const lines = [
      `model      ${info.path}`,
      `family     ${c.family}`,
      `config     vocab ${c.vocab_size}, block ${c.block_size}, ${info.layers} layers, ${c.n_head} heads${info.kvHeads !== c.n_head ? ` (${info.kvHeads} kv)` : ''}, width ${c.n_embd}` +
        (c.hyper ? `; hypernetwork rank ${c.hyper.rank}, ${c.hyper.n_heads} heads, ${c.hyper.n_layers} layers, alpha ${c.hyper.alpha}` : '') +
        (c.num_diffusion_steps !== undefined ? `; ${c.num_diffusion_steps} diffusion steps` : ''),
      `parameters ${info.paramCount.toLocaleString('en-US')}`,
      `signals    ${info.signals.length ? info.signals.map((s) => `${s.name} (${s.scope})`).join(', ') : 'none (attention only)'}`,
      `tokenizer  ${info.tokenizer.kind}: ${info.tokenizer.source}`,
      `backend    ${backend.name} (${backend.reason}${backend.skipped.length ? `; skipped ${backend.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')}` : ''})`,
    ];
    if (info.note) lines.push(`note       ${info.note}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  if (opts.heads) {
    const lm = await setup(opts, ck);
    try {
      process.stdout.write(`${await headRolesReport(lm)}\n`);
    } finally {
      await lm.dispose();
    }
  }
  return 0;
}

function usage(): number {
  process.stdout.write(USAGE + '\n');
  return 0;
}

async function cmdForward(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, ids: 'string', t: 'string', out: 'string' }, 'forward');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('forward needs --model P');
  if (!opts.ids) throw new BadInputError('forward needs --ids IDS.json');
  if (!opts.out) throw new BadInputError('forward needs --out OUT.safetensors');
  const ck = await readModel(opts);
  const c = ck.config;
  const rows = readIds(opts.ids as string, c.vocab_size, c.block_size);
  const B = rows.length, T = rows[0].length;
  const tValues = parseTimesteps(opts.t as string | undefined, B, c.num_diffusion_steps);
  checkWritable(opts.out as string);
  const lm = await setup(opts, ck);
  try {
    const tensors: Map<string, HostTensor> = await lm.runner.forwardTensors(Int32Array.from(rows.flat()), B, T, tValues ? Int32Array.from(tValues) : undefined);
    writeOutput(opts.out as string, () => writeSafetensors(opts.out as string, tensors, { metadata: { producer: 'headlens forward', config: JSON.stringify(c), runtime: lm.runner.name } }));
    process.stderr.write(`wrote ${tensors.size} tensors to ${opts.out} (${lm.runner.name})\n`);
  } finally {
    await lm.dispose();
  }
  return 0;
}

function parseTimesteps(raw: string | undefined, B: number, steps: number | undefined): number[] | undefined {
  if (raw === undefined) return steps !== undefined ? new Array(B).fill(0) : undefined;
  if (steps === undefined) throw new BadInputError('--t is only for diffusion models (this model is causal)');
  let t: unknown;
  try {
    t = JSON.parse(raw);
  } catch {
    throw new BadInputError(`--t must be a JSON list of ${B} integers, got ${raw}`);
  }
  if (typeof t === 'number') t = new Array(B).fill(t);
  if (!Array.isArray(t) || t.length !== B || !t.every((v) => Number.isInteger(v) && v >= 0 && v <= steps)) {
    throw new BadInputError(`--t must be a JSON list of ${B} integers in [0, ${steps}], got ${raw}`);
  }
  return t as number[];
}

/** The output's folder exists (checked before any backend starts). */
function checkWritable(file: string): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`cannot write ${file}: folder ${dir} does not exist`);
}

/** Output files: a clear error when the folder is missing or not writable. */
function writeOutput(file: string, write: () => void): void {
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir)) throw new BadInputError(`cannot write ${file}: folder ${dir} does not exist`);
  try {
    write();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EROFS' || code === 'EISDIR' || code === 'ENOENT') throw new BadInputError(`cannot write ${file}: ${code}`);
    throw e;
  }
}

async function cmdAnalyze(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, text: 'string', 'text-file': 'string', json: 'string', html: 'string', window: 'int', stride: 'int', audit: 'int', lens: 'boolean', 'max-rows': 'int', 'report-layers': 'string' }, 'analyze');
  if (opts.help) return usage();
  if ((opts.text === undefined) === (opts['text-file'] === undefined)) throw new BadInputError('analyze needs exactly one of --text S or --text-file F');
  let text = opts.text as string | undefined;
  const file = opts['text-file'] as string | undefined;
  if (file !== undefined) {
    if (!fs.existsSync(file)) throw new BadInputError(`no such file: ${file}`);
    if (fs.statSync(file).isDirectory()) throw new BadInputError(`${file} is a folder: --text-file takes a text file`);
    text = fs.readFileSync(file, 'utf8');
  }
  if (!text) throw new BadInputError(`nothing to analyse: ${file ? `${file} is empty` : 'the text is empty'}`);
  for (const out of [opts.json, opts.html]) if (out) checkWritable(out as string);
  const lm = await setup(opts, await readModel(opts));
  const layers = reportLayers(opts['report-layers'] as string | undefined, lm.info.layers);
  if (lm.info.note) process.stderr.write(`note: ${lm.info.note}\n`);
  const events: AnalyzeEvent[] = [];
  const gen = analyzeText(lm, { text: text!, window: opts.window as number | undefined, stride: opts.stride as number | undefined, auditPositions: opts.audit as number | undefined, logitLens: !!opts.lens });
  let result;
  for (;;) {
    const step = await gen.next();
    if (step.done) {
      result = step.value;
      break;
    }
    events.push(step.value);
    if (step.value.kind === 'layer') process.stderr.write(`\ranalysed window ${step.value.window + 1}, layer ${step.value.layer + 1}/${lm.info.layers}   `);
  }
  process.stderr.write('\n');
  const tokens: TokenInfo[] = [];
  for (const e of events) if (e.kind === 'tokens') for (const t of e.tokens) tokens[t.index] = t; // sliding windows overlap
  const data: ExplorerData = { documentUri: file ? path.resolve(file) : '(text)', model: lm.info, tokens, result, events };
  process.stdout.write(formatTokenTable(data, (opts['max-rows'] as number | undefined) ?? 400) + '\n');
  if (opts.json) writeOutput(opts.json as string, () => atomicWrite(opts.json as string, JSON.stringify(data)));
  if (opts.html) writeOutput(opts.html as string, () => atomicWrite(opts.html as string, renderHtml(data, layers)));
  await lm.dispose();
  return 0;
}

function atomicWrite(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

/** `--report-layers 0,3`: the layers whose attention maps the report keeps. */
function reportLayers(spec: string | undefined, L: number): number[] | undefined {
  if (spec === undefined) return undefined;
  const layers = spec.split(',').map((s) => s.trim());
  for (const l of layers) if (!/^\d+$/.test(l) || +l >= L) throw new BadInputError(`--report-layers: '${l}' is not a layer of this model (0…${L - 1})`);
  return layers.map(Number);
}

/** The standalone report: D3 bundle and CSS inline (no network); attention maps within a size budget. */
function renderHtml(full: ExplorerData, layers?: number[]): string {
  // Loaded lazily so the engine runs without the webview bundles being built.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { renderReportHtml, slimForReport } = require('../analysis/report') as typeof import('../analysis/report');
  const { data, attention } = slimForReport(full, { layers });
  if (attention.dropped.length) process.stderr.write(`note: the report keeps the attention maps of layer${attention.layers.length > 1 ? 's' : ''} ${attention.layers.join(', ')} (choose with --report-layers); every layer's summaries and signals are in it\n`);
  const media = [path.join(__dirname, '..', 'media'), path.join(__dirname, '..', '..', 'media')].find((d) => fs.existsSync(path.join(d, 'dist', 'report.js')));
  if (!media) throw new Error('the report bundle media/dist/report.js is missing: run `npm run build`');
  const css = ['report.css', 'explorer.css'].map((f) => path.join(media, f)).filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8')).join('\n');
  return renderReportHtml(data, fs.readFileSync(path.join(media, 'dist', 'report.js'), 'utf8'), css);
}

/** Weights only, PyTorch names and layout, config in the metadata (+ a sidecar .json). */
async function cmdExport(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { ...COMMON, out: 'string', fp16: 'boolean', note: 'string' }, 'export');
  if (opts.help) return usage();
  if (!opts.model) throw new BadInputError('export needs --model P');
  if (!opts.out) throw new BadInputError('export needs --out OUT.safetensors');
  const ck = await readModel(opts);
  const info = modelInfo(ck, tokenizerFor((opts.model as string | undefined) ?? null, opts.tokenizer as string | undefined).tokenizer.info);
  const out = opts.out as string;
  const config = JSON.stringify(ck.config);
  const metadata: Record<string, string> = { format: 'headlens-model-1', config, tokenizer: info.tokenizer.kind };
  if (opts.note) metadata.note = opts.note as string;
  const ordered = new Map(familyDef(ck.config.family).parameters(ck.config).map((p) => [p.name, ck.weights.get(p.name)!]));
  writeOutput(out, () => writeSafetensors(out, ordered, { metadata, dtype: opts.fp16 ? 'F16' : 'F32' }));
  atomicWrite(out.replace(/\.safetensors$/, '') + '.json', JSON.stringify({ ...ck.config, note: opts.note }, null, 2) + '\n');
  process.stderr.write(`wrote ${out} (${(fs.statSync(out).size / 1e6).toFixed(2)} MB, ${info.family}, ${info.paramCount.toLocaleString('en-US')} parameters)\n`);
  return 0;
}

async function cmdServe(argv: string[]): Promise<number> {
  const opts = parseArgs(argv, { backend: 'string', debug: 'boolean' }, 'serve');
  // stdout carries protocol only: anything a library prints goes to stderr.
  console.log = (...a: unknown[]) => process.stderr.write(a.map(String).join(' ') + '\n');
  console.warn = console.log;
  console.info = console.log;
  const service = new EngineService(backendOf(opts));
  await service.attach(new EngineServer(process.stdin, process.stdout)).listen();
  await new Promise<void>((r) => process.stdout.write('', () => r()));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => process.exit(reportError(e, process.argv.includes('--debug'))),
  );
}
