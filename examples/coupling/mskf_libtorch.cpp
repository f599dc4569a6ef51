// Run the exported MSKF surrogate (sciml wrf export) from C++ through libtorch, the way FTorch does from Fortran:
// torch::jit::load, inputs wrapped around column-major (Fortran-ordered) buffers without a copy, one forward call,
// results copied into column-major output buffers. Tensors are raw float32 files in Fortran order.
//
//   mskf_libtorch MODEL.pt DIR NI NK NJ
//   reads  DIR/{profiles,w,surface,held,params}.f32, writes DIR/{tendencies,column,w0avg}.out.f32
//
// Build (tests/test_coupling_native.py does this; TORCH = python -c "import torch, os; print(os.path.dirname(torch.__file__))"):
//   g++ -std=c++20 -O1 mskf_libtorch.cpp -I$TORCH/include -I$TORCH/include/torch/csrc/api/include \
//       -L$TORCH/lib -Wl,-rpath,$TORCH/lib -ltorch -ltorch_cpu -lc10 -o mskf_libtorch
#include <ATen/Parallel.h>
#include <torch/script.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

// FTorch's default layout: a tensor whose shape is the Fortran shape and whose strides are column-major.
static std::vector<int64_t> fortran_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t s = 1;
  for (size_t d = 0; d < shape.size(); ++d) {
    strides[d] = s;
    s *= shape[d];
  }
  return strides;
}

static int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t v : shape) n *= v;
  return n;
}

static std::vector<float> read_f32(const std::string& path, int64_t n) {
  std::vector<float> buf(n);
  std::ifstream in(path, std::ios::binary);
  if (!in.read(reinterpret_cast<char*>(buf.data()), n * sizeof(float)))
    throw std::runtime_error(path + ": expected " + std::to_string(n) + " float32 values");
  return buf;
}

static void write_f32(const std::string& path, const std::vector<float>& buf) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(buf.data()), buf.size() * sizeof(float));
}

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: mskf_libtorch MODEL.pt DIR NI NK NJ\n";
    return 2;
  }
  const std::string model_path = argv[1], dir = argv[2];
  const int64_t ni = std::stoll(argv[3]), nk = std::stoll(argv[4]), nj = std::stoll(argv[5]);
  at::set_num_threads(1);
  try {
    torch::jit::Module module = torch::jit::load(model_path);
    module.eval();
    const std::vector<std::pair<std::string, std::vector<int64_t>>> in_specs = {
        {"profiles", {ni, nk, nj, 10}}, {"w", {ni, nk + 1, nj}}, {"surface", {ni, nj, 5}},
        {"held", {ni, nk, nj, 6}}, {"params", {2}}};
    std::vector<std::vector<float>> in_bufs;
    std::vector<torch::jit::IValue> inputs;
    for (const auto& [name, shape] : in_specs) {
      in_bufs.push_back(read_f32(dir + "/" + name + ".f32", numel(shape)));
      inputs.emplace_back(torch::from_blob(in_bufs.back().data(), shape, fortran_strides(shape), torch::kFloat32));
    }
    torch::NoGradGuard no_grad;
    auto result = module.forward(inputs).toTuple();
    const std::vector<std::pair<std::string, std::vector<int64_t>>> out_specs = {
        {"tendencies", {ni, nk, nj, 6}}, {"column", {ni, nj, 4}}, {"w0avg", {ni, nk, nj}}};
    for (size_t k = 0; k < out_specs.size(); ++k) {
      const auto& [name, shape] = out_specs[k];
      std::vector<float> buf(numel(shape));
      torch::from_blob(buf.data(), shape, fortran_strides(shape), torch::kFloat32).copy_(result->elements()[k].toTensor());
      write_f32(dir + "/" + name + ".out.f32", buf);
    }
  } catch (const std::exception& exc) {
    std::cerr << "mskf_libtorch: " << exc.what() << "\n";
    return 1;
  }
  std::printf("ok: %lld x %lld x %lld tile\n", static_cast<long long>(ni), static_cast<long long>(nk),
              static_cast<long long>(nj));
  return 0;
}
