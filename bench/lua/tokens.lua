-- Bearer tokens of signed-in users, read from a file with one token a line.
local tokens = {}

function tokens.read(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(found, line) end
  end
  assert(#found > 0, "no tokens in " .. path)
  return found
end

function tokens.header(list)
  return "Bearer " .. list[math.random(1, #list)]
end

return tokens
