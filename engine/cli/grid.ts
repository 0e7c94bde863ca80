/**
 * `headlens grid` — an experiment grid from a JSON spec (engine/grid):
 *   headlens grid SPEC.json [--out DIR] [--backend B] [--plan]
 *   headlens grid --template autoresearch [--data PATH…] > spec.json
 * Runs the variants one after another (resuming from SPEC.state.json: finished runs are not
 * redone), prints progress on stderr and the table on stdout, and writes SPEC.results.json and
 * SPEC.results.csv beside the spec. `--plan` prints the table without training. A bad spec is
 * one line naming the field, exit 2.
 */
import { parseArgs } from './args';
import { BadInputError, reportError } from '../errors';
import type { GridEvent } from '../protocol';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { gridTemplate } from '../grid/template';
import { readGridSpec } from '../grid/spec';
import { checkVariants, planGrid } from '../grid/plan';
import { loadState } from '../grid/state';
import { runGrid } from '../grid/runner';
import { formatGridTable } from '../grid/table';

const USAGE = `usage: headlens grid SPEC.json [--out DIR] [--backend B] [--plan]
       headlens grid --template autoresearch [--data PATH…] > spec.json
Runs the spec's variants one after another with the same data, seeds and budget; resumable
(SPEC.state.json beside the spec keeps finished runs). --plan: the table so far, nothing trained.`;

const GRID_ARGS = { out: 'string', backend: 'string', plan: 'boolean', template: 'string', data: 'list', debug: 'boolean', help: 'boolean' } as const;

export async function runGridCommand(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  try {
    const specFile = argv[0] && !argv[0].startsWith('--') ? argv[0] : undefined;
    const o = parseArgs(specFile ? argv.slice(1) : argv, GRID_ARGS, 'grid');
    if (o.help) {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (o.template !== undefined) {
      process.stdout.write(JSON.stringify(gridTemplate(o.template as string, o.data as string[] | undefined), null, 2) + '\n');
      return 0;
    }
    if (!specFile) throw new BadInputError('grid needs a spec: headlens grid SPEC.json (headlens grid --template autoresearch > spec.json writes one)');
    if (o.plan) return printPlan(specFile, o.out as string | undefined);
    const spec = readGridSpec(specFile, { out: o.out as string | undefined });
    checkVariants(spec); // a bad variant fails before a backend is probed
    await initBackend(tfjsChoiceOf((o.backend as string | undefined) ?? process.env.HEADLENS_BACKEND ?? 'auto'));
    const table = await runGrid(specFile, { out: o.out as string | undefined, onEvent: progressLine() });
    process.stdout.write(formatGridTable(table) + '\n');
    process.stderr.write(`results: ${table.exports.json}, ${table.exports.csv}\n`);
    return 0;
  } catch (e) {
    return reportError(e, debug);
  }
}

function printPlan(specFile: string, out?: string): number {
  const spec = readGridSpec(specFile, { out });
  checkVariants(spec);
  process.stdout.write(formatGridTable(planGrid(spec, loadState(spec)).table) + '\n');
  return 0;
}

/** One stderr line per run start/end, and the run's last step every few seconds. */
function progressLine(): (e: GridEvent) => void {
  let current = '';
  let printed = 0;
  return (e) => {
    if (e.kind === 'run') {
      current = `[${e.index}/${e.total}] ${e.variant} (seed ${e.seed})`;
      process.stderr.write(`${current}: ${e.state}${e.message ? ` (${e.message})` : ''}${e.state === 'started' ? ` → ${e.dir}` : ''}\n`);
    } else if (e.kind === 'train' && e.event.kind === 'eval') {
      process.stderr.write(`${current}: step ${e.event.step} val_loss ${e.event.val_loss.toFixed(4)}\n`);
    } else if (e.kind === 'train' && e.event.kind === 'step' && Date.now() - printed > 5000) {
      printed = Date.now();
      process.stderr.write(`${current}: step ${e.event.step + 1} loss ${e.event.loss.toFixed(4)}\n`);
    }
  };
}
