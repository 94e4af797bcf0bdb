/**
 * sheetsync editor add-on: an Extensions menu and a sidebar that call the sheetsync backend.
 *
 * The backend does the work (read the sheet, train, write the tabs). This script only
 *  - builds the menu in onOpen (AuthMode.NONE safe: no properties, no fetches there),
 *  - calls the backend with the user's Google ID token (Authorization: Bearer, proves who calls)
 *    and OAuth access token (X-Goog-User-Token, lets the backend open this sheet as the user),
 *  - shows run status, progress, errors (as links to their cells) and precedents in a sidebar,
 *    highlighting traced cells and restoring their backgrounds afterwards.
 *
 * The backend URL comes from the document property SHEETSYNC_BACKEND_URL, else the script
 * property of the same name (set it in Project Settings > Script properties, or with
 * Extensions > sheetsync > Backend URL…). It must be https and listed in urlFetchWhitelist.
 */

var BACKEND_URL_PROPERTY = 'SHEETSYNC_BACKEND_URL';
var PENDING_PROPERTY = 'sheetsync.pending';
var HIGHLIGHT_PROPERTY = 'sheetsync.highlight';
var SCHEDULE_PREFIX = 'sheetsync.schedule.';
var HIGHLIGHT_COLOR = '#fff2a8';
var MAX_HIGHLIGHT = 200;
var SIDEBAR_TITLE = 'sheetsync';
var OUTPUT_SUFFIXES = [' steps', ' epochs', ' map'];

// The demo workbook's inputs (sheetsync.demo): the fast.ai workbook's 29 samples, y = 2x + 30,
// and four experiments side by side.
var EXAMPLE_X = [14, 86, 28, 51, 28, 29, 72, 62, 84, 15, 42, 62, 47, 35, 9, 38, 44, 99, 13, 21, 28,
                 20, 8, 64, 99, 70, 27, 17, 8];
var EXAMPLE_EXPERIMENTS = [
  ['setting', 'basic', 'momentum', 'adam', 'relu'],
  ['model', 'linear', 'linear', 'linear', 'two_relu'],
  ['flavour', 'graddesc', 'graddesc', 'graddesc', 'pytorch'],
  ['optimizer', 'sgd', 'momentum', 'adam', 'sgd'],
  ['lr', 0.0001, 0.0001, 1, 0.00003],
  ['epochs', 5, 5, 5, 5],
  ['init a', 1, 1, 1, 1],
  ['init b', 1, 1, 1, -40],
  ['init c', null, null, null, 1.5],
  ['init d', null, null, null, 80]
];

// ---------------------------------------------------------------------------------------------
// Menu

function onOpen(e) {
  SpreadsheetApp.getUi().createAddonMenu()
      .addItem('Run', 'menuRun')
      .addItem('Run all', 'menuRunAll')
      .addItem('Reset', 'menuReset')
      .addSeparator()
      .addItem('Insert example sheet', 'menuInsertExample')
      .addItem('Trace precedents of the selected cell', 'menuTrace')
      .addSeparator()
      .addItem('Schedule…', 'menuSchedule')
      .addItem('Backend URL…', 'menuBackendUrl')
      .addToUi();
}

function onInstall(e) {
  onOpen(e);
}

function menuRun() {
  var name = selectedExperiment();
  if (!name) {
    SpreadsheetApp.getUi().alert('Select a cell in an experiment\'s column of the experiments tab ' +
        '(or in one of its output tabs), or use Run all.');
    return;
  }
  openSidebar({kind: 'run', action: 'run', experiments: [name]});
}

function menuRunAll() {
  openSidebar({kind: 'run', action: 'run', experiments: null});
}

function menuReset() {
  var name = selectedExperiment();
  openSidebar({kind: 'run', action: 'reset', experiments: name ? [name] : null});
}

function menuTrace() {
  openSidebar({kind: 'trace', cell: activeCell()});
}

function menuInsertExample() {
  var ui = SpreadsheetApp.getUi();
  var result = insertExample();
  ui.alert(result.ok ? 'Inserted the data and experiments tabs. Use Extensions > sheetsync > Run all.'
                     : result.message);
}

function menuBackendUrl() {
  var ui = SpreadsheetApp.getUi();
  var answer = ui.prompt('sheetsync backend URL', 'For example https://sheetsync.example.com',
                         ui.ButtonSet.OK_CANCEL);
  if (answer.getSelectedButton() !== ui.Button.OK) return;
  var result = setBackendUrl(answer.getResponseText());
  ui.alert(result.ok ? 'Saved.' : result.message);
}

function menuSchedule() {
  var ui = SpreadsheetApp.getUi();
  var existing = scheduleTrigger();
  if (existing) {
    var off = ui.alert('This sheet runs every hour. Stop the schedule?', ui.ButtonSet.YES_NO);
    if (off === ui.Button.YES) unschedule();
    return;
  }
  var on = ui.alert('Run every experiment of this sheet every hour?', ui.ButtonSet.YES_NO);
  if (on === ui.Button.YES) schedule();
}

// ---------------------------------------------------------------------------------------------
// Sidebar

function openSidebar(pending) {
  PropertiesService.getUserProperties().setProperty(PENDING_PROPERTY, JSON.stringify(pending));
  var html = HtmlService.createHtmlOutputFromFile('Sidebar').setTitle(SIDEBAR_TITLE);
  SpreadsheetApp.getUi().showSidebar(html);
}

/** What the menu asked the sidebar to do (taken once). */
function takePendingAction() {
  var props = PropertiesService.getUserProperties();
  var text = props.getProperty(PENDING_PROPERTY);
  props.deleteProperty(PENDING_PROPERTY);
  return text ? JSON.parse(text) : null;
}

function sidebarState() {
  return {cell: activeCell(), experiment: selectedExperiment()};
}

// ---------------------------------------------------------------------------------------------
// Calling the backend

function backendUrl() {
  var url = PropertiesService.getDocumentProperties().getProperty(BACKEND_URL_PROPERTY) ||
            PropertiesService.getScriptProperties().getProperty(BACKEND_URL_PROPERTY);
  if (!url) {
    throw new Error('No sheetsync backend configured: use Extensions > sheetsync > Backend URL…');
  }
  return url.replace(/\/+$/, '');
}

function setBackendUrl(url) {
  url = String(url || '').trim();
  if (!/^https:\/\/[^\s/]+(\/\S*)?$/.test(url)) {
    return {ok: false, message: 'The backend URL must start with https:// (got ' + JSON.stringify(url) + ').'};
  }
  PropertiesService.getDocumentProperties().setProperty(BACKEND_URL_PROPERTY, url.replace(/\/+$/, ''));
  return {ok: true};
}

/** One request to the backend: {ok, status, body} or {ok: false, status, error, run}. Never throws. */
function callBackend(method, path, payload) {
  var url;
  var identity;
  try {
    url = backendUrl() + path;
    identity = ScriptApp.getIdentityToken();
  } catch (e) {
    return failure(0, 'not_configured', e.message);
  }
  if (!identity) {
    return failure(0, 'no_identity', 'Google did not give this add-on an identity token; ' +
                   'reopen the sheet and authorise the add-on again.');
  }
  var options = {
    method: method,
    muteHttpExceptions: true,
    headers: {
      'Authorization': 'Bearer ' + identity,
      'X-Goog-User-Token': ScriptApp.getOAuthToken()
    }
  };
  if (payload !== undefined) {
    options.contentType = 'application/json';
    options.payload = JSON.stringify(payload);
  }
  var response;
  try {
    response = UrlFetchApp.fetch(url, options);
  } catch (e) {
    return failure(0, 'unreachable', 'Could not reach the sheetsync service (' + e.message + ').');
  }
  var status = response.getResponseCode();
  var body = parseJson(response.getContentText());
  if (status >= 200 && status < 300 && body) {
    return {ok: true, status: status, body: body};
  }
  if (body && body.error && body.error.message) {
    return {ok: false, status: status, error: body.error, run: body.run || null};
  }
  return failure(status, 'http_' + status, 'The sheetsync service answered ' + status +
                 ' without an explanation; try again in a minute.');
}

function failure(status, code, message) {
  return {ok: false, status: status, error: {code: code, message: message, problems: []}, run: null};
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return null;
  }
}

/** Start a run of this spreadsheet; the sidebar polls getRun while it is queued or running. */
function startRun(action, experiments) {
  var body = {spreadsheet: SpreadsheetApp.getActiveSpreadsheet().getId(), action: action || 'run'};
  if (experiments && experiments.length) body.experiments = experiments;
  return describe(callBackend('post', '/v1/runs', body));
}

function getRun(id) {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(String(id))) {
    return describe(failure(400, 'invalid_run_id', 'Not a run id.'));
  }
  return describe(callBackend('get', '/v1/runs/' + id));
}

/** The sidebar's view of a backend answer: state, run, error (with problems), message. */
function describe(result) {
  if (!result.ok) {
    return {state: 'failed', run: result.run, error: result.error, message: result.error.message};
  }
  var run = result.body;
  if (run.status === 'failed') {
    return {state: 'failed', run: run, error: run.error, message: run.error ? run.error.message : 'The run failed.'};
  }
  var state = run.status === 'succeeded' && troubled(run).length ? 'warning' : run.status;
  return {state: state, run: run, error: null, message: statusMessage(run)};
}

/** Experiments whose run diverged or whose loss rose: the sidebar warns instead of "Done". */
function troubled(run) {
  var experiments = run.summary && run.summary.experiments ? run.summary.experiments : [];
  return experiments.filter(function (e) {
    var d = e.diagnostics || {};
    return e.diverged || d.diverged_at || d.loss_rose;
  });
}

function statusMessage(run) {
  if (run.status === 'succeeded') {
    var n = run.summary && run.summary.experiments ? run.summary.experiments.length : 0;
    var bad = troubled(run);
    if (bad.length) {
      return 'Written, but ' + bad.map(function (e) {
        return e.name + (e.diagnostics && e.diagnostics.loss_rose && !e.diverged ? "'s loss rose" : ' diverged');
      }).join(', ') + ': see why below.';
    }
    return 'Done: ' + n + ' experiment' + (n === 1 ? '' : 's') + ' written.';
  }
  if (run.status === 'queued') return 'Waiting for another run of this sheet to finish…';
  var p = run.progress || {done: 0, total: 0};
  return p.total ? 'Training… ' + p.done + ' of ' + p.total + ' steps' : 'Training…';
}

// ---------------------------------------------------------------------------------------------
// Precedents, highlighting, cell links

function tracePrecedents(cell) {
  var query = '?spreadsheet=' + encodeURIComponent(SpreadsheetApp.getActiveSpreadsheet().getId()) +
              '&cell=' + encodeURIComponent(cell) + '&depth=3';
  var result = callBackend('get', '/v1/precedents' + query);
  if (!result.ok) return {ok: false, error: result.error, cell: cell, cells: [], nodes: []};
  var nodes = precedentNodes(result.body, cell);
  return {ok: true, cell: cell, nodes: nodes, cells: nodes.map(function (n) { return n.cell; })};
}

/** A1 address without quotes around the tab: "'basic steps'!H5" -> "basic steps!H5". */
function plainRef(ref) {
  var text = String(ref);
  var bang = text.lastIndexOf('!');
  if (bang < 1) return text;
  return text.slice(0, bang).replace(/^'(.*)'$/, '$1').replace(/''/g, '\'') + text.slice(bang);
}

/** Every cell a trace names (objects with a "cell" key, at any depth), once, the traced cell excepted. */
function precedentNodes(trace, self) {
  var seen = {};
  seen[plainRef(self)] = true;
  var out = [];
  (function walk(node) {
    if (Array.isArray(node)) {
      node.forEach(walk);
    } else if (node && typeof node === 'object') {
      if (typeof node.cell === 'string' && !seen[plainRef(node.cell)]) {
        seen[plainRef(node.cell)] = true;
        out.push({cell: plainRef(node.cell), label: node.label === undefined ? null : node.label,
                  value: node.value === undefined ? null : node.value});
      }
      Object.keys(node).forEach(function (key) {
        if (key !== 'cell') walk(node[key]);
      });
    }
  })(trace);
  return out;
}

/** The range an address names: "data!B7", "'basic steps'!H5" or "basic steps!H5". */
function rangeOf(ref) {
  var text = String(ref);
  var bang = text.lastIndexOf('!');
  if (bang < 1) throw new Error('Not a cell address: ' + text);
  var tab = plainRef(text).slice(0, plainRef(text).lastIndexOf('!'));
  var sheet = SpreadsheetApp.getActiveSpreadsheet().getSheetByName(tab);
  if (!sheet) throw new Error('No tab named ' + tab);
  return sheet.getRange(text.slice(bang + 1));
}

function highlightCells(cells) {
  clearHighlight();
  var saved = [];
  (cells || []).slice(0, MAX_HIGHLIGHT).forEach(function (ref) {
    var range;
    try {
      range = rangeOf(ref);
    } catch (e) {
      return;  // a cell the trace names but the sheet no longer has
    }
    saved.push({cell: ref, background: range.getBackground()});
    range.setBackground(HIGHLIGHT_COLOR);
  });
  PropertiesService.getDocumentProperties().setProperty(HIGHLIGHT_PROPERTY, JSON.stringify(saved));
  return saved.length;
}

function clearHighlight() {
  var props = PropertiesService.getDocumentProperties();
  var saved = parseJson(props.getProperty(HIGHLIGHT_PROPERTY) || '[]') || [];
  saved.forEach(function (s) {
    try {
      var white = !s.background || s.background.toLowerCase() === '#ffffff';
      rangeOf(s.cell).setBackground(white ? null : s.background);
    } catch (e) {
      // the tab was deleted since: nothing to restore
    }
  });
  props.deleteProperty(HIGHLIGHT_PROPERTY);
  return saved.length;
}

/** Select a cell the sidebar links to (an error's cell, a precedent). */
function selectCell(ref) {
  var range = rangeOf(ref);
  range.getSheet().activate();
  range.activate();
  return ref;
}

// ---------------------------------------------------------------------------------------------
// Where the user is

function activeCell() {
  var range = SpreadsheetApp.getActiveSpreadsheet().getActiveRange();
  if (!range) return null;
  return range.getSheet().getName() + '!' + range.getCell(1, 1).getA1Notation();
}

/** The experiment the selection points at: its column in experiments, or its output tab. */
function selectedExperiment() {
  var sheet = SpreadsheetApp.getActiveSpreadsheet().getActiveSheet();
  var name = sheet.getName();
  if (name === 'experiments') {
    var range = sheet.getActiveRange();
    var column = range ? range.getColumn() : 1;
    if (column < 2) return null;
    var header = sheet.getRange(1, column).getValue();
    return header === '' || header === null ? null : String(header);
  }
  for (var i = 0; i < OUTPUT_SUFFIXES.length; i++) {
    var suffix = OUTPUT_SUFFIXES[i];
    if (name.length > suffix.length && name.slice(-suffix.length) === suffix) {
      return name.slice(0, -suffix.length);
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Example sheet and schedule

function insertExample() {
  var ss = SpreadsheetApp.getActiveSpreadsheet();
  var taken = ['data', 'experiments'].filter(function (t) { return ss.getSheetByName(t); });
  if (taken.length) {
    return {ok: false, message: 'This spreadsheet already has a tab named ' + taken.join(' and ') +
            '; sheetsync will not overwrite it. Try the example in a new spreadsheet.'};
  }
  var data = [['x', 'y']].concat(EXAMPLE_X.map(function (x) { return [x, 2 * x + 30]; }));
  var experiments = EXAMPLE_EXPERIMENTS.map(function (row) {
    return row.map(function (v) { return v === null ? '' : v; });
  });
  ss.insertSheet('data').getRange(1, 1, data.length, 2).setValues(data);
  ss.insertSheet('experiments').getRange(1, 1, experiments.length, experiments[0].length).setValues(experiments);
  return {ok: true};
}

function scheduleTrigger() {
  var id = SpreadsheetApp.getActiveSpreadsheet().getId();
  var props = PropertiesService.getUserProperties();
  return ScriptApp.getProjectTriggers().filter(function (t) {
    return t.getHandlerFunction() === 'scheduledRun' && props.getProperty(SCHEDULE_PREFIX + t.getUniqueId()) === id;
  })[0] || null;
}

/** Run every experiment of this sheet hourly (add-ons may not trigger more often). */
function schedule() {
  var existing = scheduleTrigger();
  if (existing) return existing.getUniqueId();
  var trigger = ScriptApp.newTrigger('scheduledRun').timeBased().everyHours(1).create();
  PropertiesService.getUserProperties().setProperty(SCHEDULE_PREFIX + trigger.getUniqueId(),
                                                    SpreadsheetApp.getActiveSpreadsheet().getId());
  return trigger.getUniqueId();
}

function unschedule() {
  var trigger = scheduleTrigger();
  if (!trigger) return false;
  PropertiesService.getUserProperties().deleteProperty(SCHEDULE_PREFIX + trigger.getUniqueId());
  ScriptApp.deleteTrigger(trigger);
  return true;
}

/** The hourly trigger: no UI here; the outcome lands in the sheet's runs tab. */
function scheduledRun(e) {
  var id = PropertiesService.getUserProperties().getProperty(SCHEDULE_PREFIX + (e && e.triggerUid));
  if (!id) return null;
  return describe(callBackend('post', '/v1/runs', {spreadsheet: id, action: 'run'}));
}
