/** The engine process: released calls and a restart on next use after it dies. */
import * as assert from 'node:assert/strict';
import * as vscode from 'vscode';
import type { HeadLensApi } from '../../extension/extension';
import { headLens, openSample, until } from './util';

let api: HeadLensApi;

suite('engine process', () => {
  suiteSetup(async () => {
    api = await headLens();
  });

  teardown(async () => {
    await vscode.commands.executeCommand('headlens.clearAnnotations');
  });

  test('the handshake reports the backend and the protocol version; the starter model loads', async () => {
    await api.engine.ensure();
    assert.ok(api.engine.init, 'no initialize result');
    assert.equal(api.engine.init.backend.name, 'wasm', 'the test workspace asks for the wasm backend');
    const model = await api.engine.ensureModel();
    assert.equal(model.family, 'adaptive');
    assert.ok(model.config.n_layer >= 1 && model.config.n_head >= 1);
  });

  test('killed while idle: the next Analyze Attention starts a new engine', async () => {
    const editor = await openSample();
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    const pid = api.engine.pid;
    assert.ok(pid, 'no engine process');
    process.kill(pid, 'SIGKILL');
    await until(() => api.engine.pid === undefined, 'the client to notice the exit');
    assert.equal(api.engine.model, null, 'a dead engine still claims a model');
    await vscode.commands.executeCommand('headlens.analyze', { scope: 'document' });
    assert.ok(api.engine.pid && api.engine.pid !== pid, 'no new engine process');
    assert.ok(api.store.get(editor.document.uri.toString()), 'no analysis after the restart');
  });

  test('killed during an analysis: the pending call is released, not left hanging', async () => {
    const editor = await openSample();
    await api.engine.ensureModel();
    const pid = api.engine.pid!;
    let killed = false;
    const analysis = api.store.analyze(editor, 'document', { silent: true });
    // kill as soon as the request is on its way (the engine answers the first window quickly)
    setTimeout(() => {
      killed = true;
      process.kill(pid, 'SIGKILL');
    }, 50);
    const result = await Promise.race([analysis, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
    assert.ok(killed);
    assert.notEqual(result, 'hung', 'the analysis did not settle after the engine died');
    assert.equal(result, undefined, 'the analysis finished before the kill: nothing was tested');
    assert.equal(api.engine.pid, undefined);
    // and the engine comes back for the next request
    assert.ok(await api.store.analyze(editor, 'document', { silent: true }), 'no analysis after the restart');
    assert.ok(api.engine.pid && api.engine.pid !== pid);
  });
});
