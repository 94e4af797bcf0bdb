// Code.gs under Node's test runner, with fakes of the Apps Script services.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const {load} = require('./fakes');

const URL = 'https://sheetsync.example.com';

// Values made inside the vm context have that context's prototypes: compare them as JSON.
const plain = (value) => JSON.parse(JSON.stringify(value));

function configured(opts) {
  const env = load(opts);
  env.fakes.props.script.data.SHEETSYNC_BACKEND_URL = URL + '/';
  return env;
}

test('onOpen builds the Extensions menu without touching properties (AuthMode.NONE)', () => {
  const {gs, fakes} = load();
  fakes.state.authModeNone = true;
  gs.onOpen({authMode: 'NONE'});
  const menu = fakes.ui.menus[0];
  assert.equal(menu.added, true);
  const labels = menu.items.map((i) => i[0]).filter((l) => l !== '---');
  assert.deepEqual(labels, ['Run', 'Run all', 'Reset', 'Insert example sheet',
                            'Trace precedents of the selected cell', 'Schedule…', 'Backend URL…']);
  for (const [label, fn] of menu.items) {
    if (fn) assert.equal(typeof gs[fn], 'function', `${label} -> ${fn} exists`);
  }
  assert.equal(fakes.fetches.length, 0);
});

test('onInstall builds the same menu', () => {
  const {gs, fakes} = load();
  gs.onInstall({});
  assert.equal(fakes.ui.menus.length, 1);
});

test('a run posts the spreadsheet id with the identity and OAuth tokens', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([200, {id: 'r1', status: 'succeeded', progress: {done: 580, total: 580},
                            summary: {experiments: [{name: 'basic'}]}}]);
  const answer = gs.startRun('run', ['basic']);
  assert.equal(answer.state, 'succeeded');
  assert.equal(answer.message, 'Done: 1 experiment written.');
  const {url, options} = fakes.fetches[0];
  assert.equal(url, URL + '/v1/runs');
  assert.equal(options.method, 'post');
  assert.equal(options.muteHttpExceptions, true);
  assert.equal(options.contentType, 'application/json');
  assert.equal(options.headers.Authorization, 'Bearer id-token-abc');
  assert.equal(options.headers['X-Goog-User-Token'], 'oauth-token-xyz');
  assert.deepEqual(JSON.parse(options.payload), {spreadsheet: 'SHEET-KEY-123', action: 'run', experiments: ['basic']});
});

test('run all sends no experiments list; reset sends the action', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([202, {id: 'r2', status: 'queued', progress: {done: 0, total: 0}}]);
  const answer = gs.startRun('reset', null);
  assert.equal(answer.state, 'queued');
  assert.match(answer.message, /Waiting for another run/);
  assert.deepEqual(JSON.parse(fakes.fetches[0].options.payload), {spreadsheet: 'SHEET-KEY-123', action: 'reset'});
});

test('polling a run reports progress', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([200, {id: 'abc123', status: 'running', progress: {done: 120, total: 580}}]);
  const answer = gs.getRun('abc123');
  assert.equal(fakes.fetches[0].url, URL + '/v1/runs/abc123');
  assert.equal(fakes.fetches[0].options.method, 'get');
  assert.equal(fakes.fetches[0].options.payload, undefined);
  assert.equal(answer.state, 'running');
  assert.equal(answer.message, 'Training… 120 of 580 steps');
});

test('a run id that is not one is refused before any fetch', () => {
  const {gs, fakes} = configured();
  const answer = gs.getRun('../../admin');
  assert.equal(answer.state, 'failed');
  assert.equal(fakes.fetches.length, 0);
});

test('input errors come back with their cells', () => {
  const {gs, fakes} = configured();
  const problems = [{cell: 'data!A3', message: "expected a number, found 'abc'"}];
  fakes.replies.push([422, {error: {code: 'input_error', message: '1 problem(s)', problems},
                            run: {id: 'r3', status: 'failed'}}]);
  const answer = gs.startRun('run', null);
  assert.equal(answer.state, 'failed');
  assert.deepEqual(answer.error.problems, problems);
  assert.equal(answer.run.id, 'r3');
});

test('a failed run read back by polling shows its error', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([200, {id: 'r4', status: 'failed', error: {code: 'interrupted', message: 'Run it again.', problems: []}}]);
  const answer = gs.getRun('r4');
  assert.equal(answer.state, 'failed');
  assert.equal(answer.message, 'Run it again.');
});

test('a non-JSON error page becomes a clear message', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([502, '<html>Bad Gateway</html>']);
  const answer = gs.startRun('run', null);
  assert.equal(answer.state, 'failed');
  assert.equal(answer.error.code, 'http_502');
  assert.match(answer.message, /answered 502/);
});

test('an unreachable backend is reported, not thrown', () => {
  const {gs, fakes} = configured();
  fakes.replies.push(new Error('DNS error: sheetsync.example.com'));
  const answer = gs.startRun('run', null);
  assert.equal(answer.error.code, 'unreachable');
  assert.match(answer.message, /Could not reach/);
});

test('no backend URL configured gives an instruction', () => {
  const {gs, fakes} = load();
  const answer = gs.startRun('run', null);
  assert.equal(answer.error.code, 'not_configured');
  assert.match(answer.message, /Backend URL/);
  assert.equal(fakes.fetches.length, 0);
});

test('a missing identity token (openid not granted) is reported', () => {
  const {gs, fakes} = configured();
  fakes.identityToken = null;
  assert.equal(gs.startRun('run', null).error.code, 'no_identity');
  assert.equal(fakes.fetches.length, 0);
});

test('the document property overrides the script property; only https is accepted', () => {
  const {gs, fakes} = configured();
  assert.equal(gs.setBackendUrl('http://insecure.example.com').ok, false);
  assert.equal(gs.setBackendUrl('https://doc.example.com/api/').ok, true);
  assert.equal(gs.backendUrl(), 'https://doc.example.com/api');
  fakes.replies.push([200, {id: 'r', status: 'succeeded', summary: {experiments: []}}]);
  gs.startRun('run', null);
  assert.equal(fakes.fetches[0].url, 'https://doc.example.com/api/v1/runs');
});

test('trace asks for the selected cell and lists its precedents once each', () => {
  const {gs, fakes} = configured();
  // the shape sheetsync.trace returns: the root cell, then a tree of nodes with children
  fakes.replies.push([200, {cell: "'basic steps'!H5", direction: 'precedents', tree: {
    cell: "'basic steps'!H5", label: 'pred', value: 97.363, kind: 'line', children: [
      {cell: "'basic steps'!F5", label: 'a', value: 1.1204, kind: 'line',
       children: [{cell: 'experiments!B5', label: 'lr', value: 0.0001, kind: 'setting'}]},
      {cell: "'basic steps'!D5", label: 'x', value: 86, kind: 'line',
       children: [{cell: 'data!A3', label: 'x (data row 2)', value: 86, kind: 'data'}]},
      {cell: "'basic steps'!F5", label: 'a', value: 1.1204, kind: 'line', seen: true}]}}]);
  const answer = gs.tracePrecedents('basic steps!H5');
  assert.equal(fakes.fetches[0].url,
    URL + '/v1/precedents?spreadsheet=SHEET-KEY-123&cell=basic%20steps!H5&depth=3');
  assert.deepEqual(plain(answer.cells), ['basic steps!F5', 'experiments!B5', 'basic steps!D5', 'data!A3']);
  assert.deepEqual(plain(answer.nodes[3]), {cell: 'data!A3', label: 'x (data row 2)', value: 86});
});

test('a failed trace reports the error', () => {
  const {gs, fakes} = configured();
  fakes.replies.push([422, {error: {code: 'cannot_trace', message: "data!A2: a trace starts from a cell of a 'NAME steps' tab", problems: []}}]);
  const answer = gs.tracePrecedents('data!A2');
  assert.equal(answer.ok, false);
  assert.match(answer.error.message, /NAME steps/);
});

test('highlighting saves the backgrounds and clearing restores them', () => {
  const {gs, fakes} = configured();
  const data = fakes.book.sheets.data;
  data.backgrounds.A2 = '#00ff00';
  assert.equal(gs.highlightCells(['data!A2', 'data!B3', "'basic steps'!F5", 'gone!A1']), 3);
  assert.equal(data.backgrounds.A2, '#fff2a8');
  assert.equal(data.backgrounds.B3, '#fff2a8');
  assert.equal(fakes.book.sheets['basic steps'].backgrounds.F5, '#fff2a8');
  assert.equal(gs.clearHighlight(), 3);
  assert.equal(data.backgrounds.A2, '#00ff00');
  assert.equal('B3' in data.backgrounds, false);  // was default white: the fill is removed, not painted white
  assert.equal('F5' in fakes.book.sheets['basic steps'].backgrounds, false);
  assert.equal(fakes.props.document.getProperty('sheetsync.highlight'), null);
});

test('a new highlight first restores the previous one', () => {
  const {gs, fakes} = configured();
  gs.highlightCells(['data!A2']);
  gs.highlightCells(['data!B2']);
  assert.equal('A2' in fakes.book.sheets.data.backgrounds, false);
  assert.equal(fakes.book.sheets.data.backgrounds.B2, '#fff2a8');
});

test('clicking an error selects its cell', () => {
  const {gs, fakes} = configured();
  gs.selectCell('data!B7');
  assert.equal(fakes.book.activeSheet.getName(), 'data');
  assert.equal(fakes.book.getActiveRange().getA1Notation(), 'B7');
  assert.throws(() => gs.selectCell('nosuch!A1'), /No tab named nosuch/);
});

test('the selected experiment comes from its column or its output tab', () => {
  const {gs, fakes} = configured();
  fakes.book.sheets.experiments.values.C1 = 'momentum';
  fakes.book.select('experiments!C4');
  assert.equal(gs.selectedExperiment(), 'momentum');
  fakes.book.select('experiments!A4');
  assert.equal(gs.selectedExperiment(), null);
  fakes.book.select('basic steps!D9');
  assert.equal(gs.selectedExperiment(), 'basic');
  assert.equal(gs.activeCell(), 'basic steps!D9');
  fakes.book.select('data!A1');
  assert.equal(gs.selectedExperiment(), null);
});

test('Run without a selected experiment explains; with one it opens the sidebar with the run', () => {
  const {gs, fakes} = configured();
  fakes.book.select('data!A1');
  gs.menuRun();
  assert.match(fakes.ui.alerts[0], /Run all/);
  assert.equal(fakes.ui.sidebars.length, 0);
  fakes.book.sheets.experiments.values.B1 = 'basic';
  fakes.book.select('experiments!B2');
  gs.menuRun();
  assert.equal(fakes.ui.sidebars[0].file, 'Sidebar');
  assert.deepEqual(gs.takePendingAction(), {kind: 'run', action: 'run', experiments: ['basic']});
  assert.equal(gs.takePendingAction(), null);  // taken once
});

test('Trace opens the sidebar on the active cell', () => {
  const {gs, fakes} = configured();
  fakes.book.select('basic steps!H5');
  gs.menuTrace();
  assert.deepEqual(gs.takePendingAction(), {kind: 'trace', cell: 'basic steps!H5'});
});

test('Insert example sheet writes the demo inputs into new tabs, never over existing ones', () => {
  const {gs, fakes} = load({sheets: ['Sheet1']});
  assert.equal(gs.insertExample().ok, true);
  const data = fakes.book.sheets.data.values;
  assert.deepEqual([data.A1, data.B1, data.A2, data.B2, data.A30, data.B30], ['x', 'y', 14, 58, 8, 46]);
  const exp = fakes.book.sheets.experiments.values;
  assert.deepEqual([exp.A1, exp.E1, exp.E2, exp.E10, exp.B10], ['setting', 'relu', 'two_relu', 80, '']);
  const again = gs.insertExample();
  assert.equal(again.ok, false);
  assert.match(again.message, /already has a tab named data and experiments/);
});

test('Schedule creates one hourly trigger per sheet, and removes it', () => {
  const {gs, fakes} = configured();
  const uid = gs.schedule();
  assert.equal(gs.schedule(), uid);  // not twice
  assert.equal(fakes.triggers.length, 1);
  assert.deepEqual(fakes.triggers[0].spec, {handler: 'scheduledRun', kind: 'time', hours: 1});
  fakes.replies.push([200, {id: 'r9', status: 'succeeded', summary: {experiments: []}}]);
  const answer = gs.scheduledRun({triggerUid: uid});
  assert.equal(answer.state, 'succeeded');
  assert.deepEqual(JSON.parse(fakes.fetches[0].options.payload), {spreadsheet: 'SHEET-KEY-123', action: 'run'});
  assert.equal(gs.unschedule(), true);
  assert.equal(fakes.triggers.length, 0);
  assert.equal(gs.scheduledRun({triggerUid: uid}), null);
});

test('the Schedule menu asks before switching on and off', () => {
  const {gs, fakes} = configured();
  fakes.ui.answer = 'YES';
  gs.menuSchedule();
  assert.equal(fakes.triggers.length, 1);
  gs.menuSchedule();
  assert.equal(fakes.triggers.length, 0);
  assert.match(fakes.ui.alerts[1], /Stop the schedule/);
});
