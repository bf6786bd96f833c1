// Draws the programme's charts from ra's open-data API as inline SVG (no library, no network but ra).
(function () {
  'use strict';
  var SVG = 'http://www.w3.org/2000/svg';

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A grouped bar chart: one group per year, one bar per series; each bar carries its value.
  function barChart(svg, years, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var width = Number(svg.getAttribute('width')), height = Number(svg.getAttribute('height'));
    var left = 70, bottom = 30, top = 16, plotH = height - bottom - top, plotW = width - left - 10;
    var max = 1;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    svg.appendChild(el('line', { x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, stroke: '#888' }));
    svg.appendChild(el('text', { x: left - 6, y: top + 4, 'text-anchor': 'end' }, max.toLocaleString('en')));
    svg.appendChild(el('text', { x: left - 6, y: top + plotH, 'text-anchor': 'end' }, '0'));
    var group = plotW / Math.max(years.length, 1), bar = Math.max(4, (group * 0.7) / series.length);
    years.forEach(function (year, i) {
      var x0 = left + i * group + group * 0.15;
      series.forEach(function (s, j) {
        var v = s.values[i], h = Math.round((v / max) * plotH);
        var rect = el('rect', { x: x0 + j * bar, y: top + plotH - h, width: bar - 1, height: h, class: s.className, 'data-year': year, 'data-series': s.name, 'data-value': v });
        rect.appendChild(el('title', {}, s.name + ' ' + year + ': ' + v.toLocaleString('en')));
        svg.appendChild(rect);
      });
      svg.appendChild(el('text', { x: x0 + (bar * series.length) / 2, y: top + plotH + 16, 'text-anchor': 'middle' }, String(year)));
    });
  }

  function fillTable(id, rows, columns) {
    var body = document.querySelector('#' + id + ' tbody');
    body.textContent = '';
    rows.forEach(function (row) {
      var tr = document.createElement('tr');
      columns.forEach(function (c) {
        var td = document.createElement('td');
        td.textContent = typeof row[c] === 'number' && c !== 'year' ? row[c].toLocaleString('en') : String(row[c]);
        td.setAttribute('data-field', c);
        td.setAttribute('data-value', String(row[c]));
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
  }

  function get(path) {
    return fetch(path, { headers: { accept: 'application/json' } }).then(function (res) {
      if (!res.ok) throw new Error(path + ' answered ' + res.status);
      return res.json();
    });
  }

  Promise.all([get('../open-data/usage-by-year.json'), get('../open-data/issuance-by-gender.json')])
    .then(function (data) {
      var usage = data[0].rows, gender = data[1].rows;
      var years = usage.map(function (r) { return r.year; });
      barChart(document.getElementById('uses-chart'), years, [
        { name: 'government', className: 'gov', values: usage.map(function (r) { return r.usesGovernment; }) },
        { name: 'public', className: 'pub', values: usage.map(function (r) { return r.usesPublic; }) },
      ]);
      barChart(document.getElementById('systems-chart'), years, [
        { name: 'government', className: 'gov', values: usage.map(function (r) { return r.systemsGovernment; }) },
        { name: 'public', className: 'pub', values: usage.map(function (r) { return r.systemsPublic; }) },
      ]);
      fillTable('usage-table', usage, ['year', 'systemsGovernment', 'systemsPublic', 'usesGovernment', 'usesPublic']);
      barChart(document.getElementById('gender-chart'), gender.map(function (r) { return r.year; }), [
        { name: 'male', className: 'male', values: gender.map(function (r) { return r.male; }) },
        { name: 'female', className: 'female', values: gender.map(function (r) { return r.female; }) },
      ]);
      fillTable('gender-table', gender, ['year', 'male', 'female', 'total']);
      var status = document.getElementById('status');
      status.textContent = 'Open data as of ' + new Date().toISOString();
      document.body.setAttribute('data-ready', 'true');
    })
    .catch(function (err) {
      document.getElementById('status').textContent = 'Could not load the open data: ' + err.message;
      document.body.setAttribute('data-ready', 'error');
    });
})();
