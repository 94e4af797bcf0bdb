// A finished run with a diverged or rising experiment is a warning, not a green "Done".
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const {load} = require('./fakes');

const plain = (value) => JSON.parse(JSON.stringify(value));

function finished(experiments) {
  return {ok: true, body: {id: 'r1', status: 'succeeded', summary: {experiments: experiments}}};
}

test('a run whose experiment diverged is a warning naming it', () => {
  const {gs} = load();
  const answer = plain(gs.describe(finished([
    {name: 'basic', diverged: null, diagnostics: {}},
    {name: 'thread', diverged: 'DIVERGED at epoch 1, step 28', diagnostics: {diverged_at: {step: 28}}},
  ])));
  assert.equal(answer.state, 'warning');
  assert.equal(answer.message, 'Written, but thread diverged: see why below.');
});

test('a loss that rose without diverging is a warning too', () => {
  const {gs} = load();
  const answer = plain(gs.describe(finished([{name: 'adam', diverged: null, diagnostics: {loss_rose: [3, 5]}}])));
  assert.equal(answer.state, 'warning');
  assert.equal(answer.message, "Written, but adam's loss rose: see why below.");
});

test('a calm run is still Done', () => {
  const {gs} = load();
  const answer = plain(gs.describe(finished([{name: 'basic', diverged: null, diagnostics: {safe_lr: null}}])));
  assert.equal(answer.state, 'succeeded');
  assert.equal(answer.message, 'Done: 1 experiment written.');
});
