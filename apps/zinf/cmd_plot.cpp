// zinf plot — one self-contained HTML report of a run directory.
// Implements: `zinf plot RUN_DIR [--output FILE.html]` (default
// RUN_DIR/report.html): reads metrics.jsonl (a running job's cut last line is
// skipped), the resolved config (ds_config.json or config.json) and
// summary.json, and writes a page whose inline script draws SVG charts — loss
// and validation loss, throughput, TFLOP/s and MFU, memory per tier, bytes
// moved per step, the step timeline (compute + GPU idle as stacked bars,
// the overlapping waits as lines) — plus the configuration
// and the summary (the planner's estimate beside the measured peaks where the
// run logged them). No network, no external libraries. The page writes what
// it drew into <pre id="zinf-plot-check"> ({"charts": {chart: {series:
// [[step, value]...]}}, "errors": [...]}) so a headless browser can check it.
#include <iostream>
#include <memory>
#include <sstream>

#include "command.h"
#include "config/json.h"
#include "core/error.h"
#include "core/fs.h"

namespace zinf::app {
namespace {

using config::Json;

Json read_json_or_null(const std::string& path) {
  if (!fs::exists(path)) return nullptr;
  return Json::parse(fs::read_file(path), nullptr, /*allow_exceptions=*/false);
}

// Every complete line; a line that does not parse (a running job's last) ends the list.
Json read_metrics(const std::string& path) {
  Json lines = Json::array();
  std::istringstream in(fs::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step")) break;
    lines.push_back(std::move(j));
  }
  return lines;
}

// JSON safe inside <script>: no "</" can end the element.
std::string script_json(const Json& j) {
  std::string s = j.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') out += "\\u003c";
    else out += s[i];
  }
  return out;
}

const char* const kPage = R"HTML(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>zinf run report</title>
<style>
body{font-family:system-ui,sans-serif;margin:16px;color:#222;background:#fafafa}
h1{font-size:20px}h2{font-size:16px;margin:18px 0 4px}
.chart{background:#fff;border:1px solid #ddd;margin:8px 0;padding:6px;display:inline-block;vertical-align:top}
.legend span{margin-right:12px;font-size:12px}.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}
pre{background:#fff;border:1px solid #ddd;padding:8px;font-size:12px;overflow:auto;max-height:400px}
#zinf-plot-check{display:none}
</style></head><body>
<h1>zinf run report: <span id="run-dir"></span></h1>
<div id="charts"></div>
<h2>Summary (planner estimate vs measured)</h2><pre id="summary"></pre>
<h2>Configuration</h2><pre id="config"></pre>
<pre id="zinf-plot-check"></pre>
<script type="application/json" id="zinf-data">@DATA@</script>
<script>
(function(){
var errors=[];
window.onerror=function(m){errors.push(String(m));};
var check={charts:{},errors:errors};
function finish(){document.getElementById('zinf-plot-check').textContent=JSON.stringify(check);}
try{
var data=JSON.parse(document.getElementById('zinf-data').textContent);
var lines=data.metrics;
document.getElementById('run-dir').textContent=data.run_dir;
document.getElementById('summary').textContent=JSON.stringify(data.summary,null,2);
document.getElementById('config').textContent=JSON.stringify(data.config,null,2);
var colors=['#1f77b4','#ff7f0e','#2ca02c','#d62728','#9467bd','#8c564b','#e377c2','#7f7f7f','#bcbd22','#17becf'];
var NS='http://www.w3.org/2000/svg';
function el(n,a,p){var e=document.createElementNS(NS,n);for(var k in a)e.setAttribute(k,a[k]);if(p)p.appendChild(e);return e;}
function get(l,f){var parts=f.split('.'),v=l;for(var i=0;i<parts.length;i++){if(v==null||typeof v!=='object')return undefined;v=v[parts[i]];}return v;}
function points(f){var p=[];lines.forEach(function(l){var v=get(l,f);if(typeof v==='number')p.push([l.step,v]);});return p;}
function frame(title,series){
  var box=document.createElement('div');box.className='chart';
  var h=document.createElement('div');h.textContent=title;box.appendChild(h);
  var leg=document.createElement('div');leg.className='legend';box.appendChild(leg);
  series.forEach(function(s,i){var sp=document.createElement('span');sp.innerHTML='<i style="background:'+colors[i%10]+'"></i>';sp.appendChild(document.createTextNode(s.name));leg.appendChild(sp);});
  var svg=el('svg',{width:600,height:220},box);document.getElementById('charts').appendChild(box);return svg;}
function axes(svg,x0,x1,y0,y1){
  el('line',{x1:50,y1:200,x2:590,y2:200,stroke:'#999'},svg);el('line',{x1:50,y1:10,x2:50,y2:200,stroke:'#999'},svg);
  [[y0,200],[y1,10]].forEach(function(t){var tx=el('text',{x:2,y:t[1]+4,'font-size':10},svg);tx.textContent=Number(t[0].toPrecision(3));});
  [[x0,50],[x1,560]].forEach(function(t){var tx=el('text',{x:t[1],y:214,'font-size':10},svg);tx.textContent=t[0];});}
function lineChart(id,title,fields){
  var series=[];fields.forEach(function(f){var p=points(f);if(p.length)series.push({name:f,pts:p});});
  if(!series.length)return;
  check.charts[id]={};series.forEach(function(s){check.charts[id][s.name]=s.pts;});
  var svg=frame(title,series);
  var all=[].concat.apply([],series.map(function(s){return s.pts;}));
  var x0=Math.min.apply(null,all.map(function(p){return p[0];})),x1=Math.max.apply(null,all.map(function(p){return p[0];}));
  var y0=Math.min(0,Math.min.apply(null,all.map(function(p){return p[1];}))),y1=Math.max.apply(null,all.map(function(p){return p[1];}));
  if(x1===x0)x1=x0+1;if(y1===y0)y1=y0+1;axes(svg,x0,x1,y0,y1);
  function X(x){return 50+(x-x0)/(x1-x0)*540;}function Y(y){return 200-(y-y0)/(y1-y0)*190;}
  series.forEach(function(s,i){
    el('polyline',{points:s.pts.map(function(p){return X(p[0])+','+Y(p[1]);}).join(' '),fill:'none',stroke:colors[i%10],'stroke-width':1.5},svg);
    s.pts.forEach(function(p){el('circle',{cx:X(p[0]),cy:Y(p[1]),r:2,fill:colors[i%10]},svg);});});}
function stackedBars(id,title,prefix,parts){
  var keys=parts.filter(function(k){return lines.some(function(l){var o=get(l,prefix);return o&&typeof o[k]==='number';});});
  if(!keys.length)return;
  var series=keys.map(function(k){return {name:prefix+'.'+k,pts:points(prefix+'.'+k)};});
  check.charts[id]={};series.forEach(function(s){check.charts[id][s.name]=s.pts;});
  var svg=frame(title,series);
  var steps=lines.filter(function(l){return get(l,prefix);}).map(function(l){return l.step;});
  var tot=lines.map(function(l){var o=get(l,prefix)||{};return keys.reduce(function(a,k){return a+(typeof o[k]==='number'?o[k]:0);},0);});
  var y1=Math.max.apply(null,tot.concat([1e-12]));axes(svg,steps[0],steps[steps.length-1],0,y1);
  var w=Math.max(1,540/steps.length-2),j=0;
  lines.forEach(function(l){var o=get(l,prefix);if(!o)return;var y=200;
    keys.forEach(function(k,i){var v=typeof o[k]==='number'?o[k]:0;var h=v/y1*190;y-=h;el('rect',{x:50+j*(540/steps.length)+1,y:y,width:w,height:h,fill:colors[i%10]},svg);});j++;});}
lineChart('loss','Loss (training and validation) per step',['loss','val_loss']);
lineChart('throughput','Throughput: tokens/s',['tokens_per_s']);
lineChart('tflops','Model TFLOP/s',['tflops']);
lineChart('mfu','MFU (model FLOP utilisation, fraction of peak)',['mfu']);
lineChart('memory','Memory per tier (bytes)',['peak_gpu_bytes','rss_bytes','peak_rss_bytes']);
lineChart('io','Bytes moved per step (host to device, device to host, NVMe)',['h2d_bytes','d2h_bytes','nvme_read_bytes_step','nvme_write_bytes_step']);
lineChart('nvme_bandwidth','NVMe GB/s (read + write, this step)',['nvme_gbps']);
lineChart('loss_scale','Loss scale',['loss_scale']);
lineChart('grad_norm','Gradient norm',['grad_norm']);
stackedBars('timeline','Step timeline: GPU compute + GPU idle = step time (seconds, stacked)','timeline',['compute_s','gpu_idle_s']);
lineChart('timeline_parts','Where the step waited (seconds; these overlap compute)',['timeline.h2d_s','timeline.d2h_s','timeline.grad_accumulate_s','timeline.optimizer_s','timeline.nvme_wait_s','timeline.fetch_wait_s','timeline.comm_s']);
}catch(e){errors.push(String(e&&e.stack||e));}
finish();
})();
</script></body></html>
)HTML";

void run_plot(const std::string& run_dir, std::string output) {
  if (!fs::is_directory(run_dir))
    throw UsageError("zinf plot: '" + run_dir + "' is not a directory",
                     "give the output directory of a run (it has metrics.jsonl)");
  const std::string metrics = run_dir + "/metrics.jsonl";
  if (!fs::exists(metrics))
    throw UsageError("zinf plot: '" + run_dir + "' has no metrics.jsonl",
                     "give the --output-dir of a `zinf train` run (started or finished)");
  if (output.empty()) output = run_dir + "/report.html";
  Json config = read_json_or_null(run_dir + "/ds_config.json");
  if (config.is_null() || config.is_discarded()) config = read_json_or_null(run_dir + "/config.json");
  Json summary = read_json_or_null(run_dir + "/summary.json");
  if (summary.is_discarded()) summary = nullptr;
  if (config.is_discarded()) config = nullptr;
  const Json data = {{"run_dir", run_dir}, {"metrics", read_metrics(metrics)}, {"config", config}, {"summary", summary}};
  std::string page = kPage;
  page.replace(page.find("@DATA@"), 6, script_json(data));
  fs::write_file_atomic(output, page);
  std::cout << output << "\n";
}

void setup(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Write one self-contained HTML page of a run (running or finished): loss, throughput and MFU,\n"
              "memory per tier, I/O, the step timeline, its configuration and summary.");
  cmd->add_option("RUN_DIR", *dir, "the run's output directory (has metrics.jsonl)")->required();
  cmd->add_option("--output", *output, "the HTML file to write (default: RUN_DIR/report.html)");
  cmd->callback([dir, output] { run_plot(*dir, *output); });
}

ZINF_REGISTER_COMMAND(55, setup);

}  // namespace
}  // namespace zinf::app
