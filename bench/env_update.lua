-- wrk: the seed's Env Update (tests/fixtures/seed/04_Env_Update.json) over 2,000 envs, each request
-- with a fresh id and a rising time. BENCH_RUN makes ids unique per run; BENCH_TOKEN is the token.
local run = os.getenv("BENCH_RUN") or "run"
local token = os.getenv("BENCH_TOKEN") or "bench-token"
local threads = {}
local counter = 0
tid = 0  -- set per thread by setup()


local template = [[{"id":"__ID__","user":{"id":"646dabc05ccc4ad1bc2a9e2f"},"orgId":"60d54f3daccf2bbd6659f3ad","time":__TIME__,"objectKind":"Env","objectAttributes":{"name":"__ENV__","displayName":"测试环境","appName":"myapp-demo","description":"这是测试环境,用于日常测试验证","creatorId":"646dabc05ccc4ad1bc2a9e2f","gmtCreate":1722236764000,"lockBy":"61c92a37ae805dbacc5b9f78","resourcePoolName":"default","deployGroupName":"demo-k8s-cluster","profiles":[{"name":"test-vars","displayName":"测试环境变量组","type":"APP"}],"spec":{"rolloutStrategy":[{"locator":"*","batches":null,"batchSteps":null,"timeOutMS":1200000,"targetReplicas":null,"batchMode":"ConfirmFirstBatch","deployType":"Rolling"}],"replicasManagement":"USER"},"labelList":[{"namespace":"default","name":"envType","value":"test","displayName":"环境级别","displayValue":"测试环境"}]}}]]

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function request()
   counter = counter + 1
   local id = run .. "-" .. tid .. "-" .. counter
   local time = 1800000000000 + counter * 4 + tid
   local env = string.format("env-%04d", (counter * 7 + tid * 1000) % 2000)
   local body = template:gsub("__ID__", id):gsub("__TIME__", tostring(time)):gsub("__ENV__", env)
   local headers = {
      ["Content-Type"] = "application/json",
      ["X-AppStack-Event"] = "Env",
      ["X-AppStack-Action"] = "Update",
      ["X-AppStack-App"] = "myapp-demo",
      ["X-AppStack-Token"] = token,
      ["X-Bench-Id"] = id,
   }
   return wrk.format("POST", "/webhooks/appstack", headers, body)
end
