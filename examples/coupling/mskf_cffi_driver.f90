! Call the MSKF surrogate from Fortran through the CFFI plugin (build_mskf_plugin.py), the way a WRF cumulus driver
! would: ISO_C_BINDING interfaces, one tile of contiguous (i, k, j) arrays, results written into the tile's arrays.
! Fields are raw float32 files in Fortran order (tests/test_coupling_native.py writes them from the bundled WRF crop).
!
!   mskf_cffi_driver CHECKPOINT DIR NI NK NJ DT
!   reads  DIR/<field>.f32 for u v w t qv p th dz8w rho pi w0avg hfx ust pblh nca pratec raincv and the six held
!   tendencies, writes DIR/<field>.out.f32 for the six tendencies, w0avg, nca, pratec and raincv
!
! Build: gfortran mskf_cffi_driver.f90 -L. -lmskf_plugin -Wl,-rpath,. -o mskf_cffi_driver
program mskf_cffi_driver
  use, intrinsic :: iso_c_binding, only : c_int, c_float, c_char, c_null_char
  implicit none
  interface
    integer(c_int) function mskf_init(checkpoint, nthreads) bind(c, name="mskf_init")
      import :: c_int, c_char
      character(kind=c_char), dimension(*) :: checkpoint
      integer(c_int), value :: nthreads
    end function
    integer(c_int) function mskf_step(ni, nk, nj, dt, cudt, u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg,   &
                                      hfx, ust, pblh, nca, pratec, raincv, rthcuten, rqvcuten, rqccuten,  &
                                      rqrcuten, rqicuten, rqscuten) bind(c, name="mskf_step")
      import :: c_int, c_float
      integer(c_int), value :: ni, nk, nj
      real(c_float), value :: dt, cudt
      real(c_float), dimension(*) :: u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg, hfx, ust, pblh,        &
                                     nca, pratec, raincv, rthcuten, rqvcuten, rqccuten, rqrcuten, rqicuten, rqscuten
    end function
  end interface

  character(len=1024) :: checkpoint, dir, arg
  integer(c_int) :: ni, nk, nj, ierr
  real(c_float) :: dt
  real(c_float), allocatable, dimension(:,:,:) :: u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg, &
                                                  rthcuten, rqvcuten, rqccuten, rqrcuten, rqicuten, rqscuten
  real(c_float), allocatable, dimension(:,:) :: hfx, ust, pblh, nca, pratec, raincv

  call get_command_argument(1, checkpoint)
  call get_command_argument(2, dir)
  call get_command_argument(3, arg); read (arg, *) ni
  call get_command_argument(4, arg); read (arg, *) nk
  call get_command_argument(5, arg); read (arg, *) nj
  call get_command_argument(6, arg); read (arg, *) dt

  allocate(u(ni, nk, nj), v(ni, nk, nj), w(ni, nk + 1, nj), t(ni, nk, nj), qv(ni, nk, nj), p(ni, nk, nj),     &
           th(ni, nk, nj), dz8w(ni, nk, nj), rho(ni, nk, nj), pi(ni, nk, nj), w0avg(ni, nk, nj),              &
           rthcuten(ni, nk, nj), rqvcuten(ni, nk, nj), rqccuten(ni, nk, nj), rqrcuten(ni, nk, nj),           &
           rqicuten(ni, nk, nj), rqscuten(ni, nk, nj), hfx(ni, nj), ust(ni, nj), pblh(ni, nj), nca(ni, nj), &
           pratec(ni, nj), raincv(ni, nj))
  call load("u", u, size(u)); call load("v", v, size(v)); call load("w", w, size(w)); call load("t", t, size(t))
  call load("qv", qv, size(qv)); call load("p", p, size(p)); call load("th", th, size(th))
  call load("dz8w", dz8w, size(dz8w)); call load("rho", rho, size(rho)); call load("pi", pi, size(pi))
  call load("w0avg", w0avg, size(w0avg)); call load("rthcuten", rthcuten, size(rthcuten))
  call load("rqvcuten", rqvcuten, size(rqvcuten)); call load("rqccuten", rqccuten, size(rqccuten))
  call load("rqrcuten", rqrcuten, size(rqrcuten)); call load("rqicuten", rqicuten, size(rqicuten))
  call load("rqscuten", rqscuten, size(rqscuten)); call load("hfx", hfx, size(hfx)); call load("ust", ust, size(ust))
  call load("pblh", pblh, size(pblh)); call load("nca", nca, size(nca)); call load("pratec", pratec, size(pratec))
  call load("raincv", raincv, size(raincv))

  ierr = mskf_init(trim(checkpoint) // c_null_char, 1_c_int)
  if (ierr /= 0) stop "mskf_init failed"
  ierr = mskf_step(ni, nk, nj, dt, 0.0_c_float, u, v, w, t, qv, p, th, dz8w, rho, pi, w0avg, hfx, ust, pblh, &
                   nca, pratec, raincv, rthcuten, rqvcuten, rqccuten, rqrcuten, rqicuten, rqscuten)
  if (ierr /= 0) stop "mskf_step failed"

  call save("rthcuten", rthcuten, size(rthcuten)); call save("rqvcuten", rqvcuten, size(rqvcuten))
  call save("rqccuten", rqccuten, size(rqccuten)); call save("rqrcuten", rqrcuten, size(rqrcuten))
  call save("rqicuten", rqicuten, size(rqicuten)); call save("rqscuten", rqscuten, size(rqscuten))
  call save("w0avg", w0avg, size(w0avg)); call save("nca", nca, size(nca)); call save("pratec", pratec, size(pratec))
  call save("raincv", raincv, size(raincv))
  print '(a, i0, a, i0, a, i0, a)', "ok: ", ni, " x ", nk, " x ", nj, " tile"

contains
  ! explicit-size dummies: a contiguous array of any rank is passed as its n elements in Fortran order
  subroutine load(name, a, n)
    character(*), intent(in) :: name
    integer, intent(in) :: n
    real(c_float), intent(out) :: a(n)
    integer :: unit
    open (newunit=unit, file=trim(dir) // "/" // name // ".f32", access="stream", form="unformatted", status="old")
    read (unit) a
    close (unit)
  end subroutine
  subroutine save(name, a, n)
    character(*), intent(in) :: name
    integer, intent(in) :: n
    real(c_float), intent(in) :: a(n)
    integer :: unit
    open (newunit=unit, file=trim(dir) // "/" // name // ".out.f32", access="stream", form="unformatted", &
          status="replace")
    write (unit) a
    close (unit)
  end subroutine
end program mskf_cffi_driver
