::core::compile_error! {
    "`faker` conflicts with `default` on field `a`: a field takes one value source (`default`, `sequence`, `faker` or `lazy`)"
}
::core::compile_error! {
    "the sequence format of field `b` never uses `{n}`: every build would get the same value (write e.g. \"user{n}@example.com\")"
}
#[allow(dead_code, missing_docs)]
pub struct BrokenFactory;
#[allow(dead_code, missing_docs, clippy::all)]
const _: () = {
    impl Broken {
        pub fn factory() -> BrokenFactory {
            BrokenFactory
        }
    }
    impl BrokenFactory {
        pub fn a<__SeedbedValue>(self, _value: __SeedbedValue) -> Self {
            self
        }
        pub fn b<__SeedbedValue>(self, _value: __SeedbedValue) -> Self {
            self
        }
        pub fn build(self) -> Broken {
            ::core::unimplemented!()
        }
        pub fn build_list(self, _n: usize) -> ::std::vec::Vec<Broken> {
            ::core::unimplemented!()
        }
        pub fn build_list_with<__SeedbedEach>(
            self,
            _n: usize,
            _each: __SeedbedEach,
        ) -> ::std::vec::Vec<Broken> {
            ::core::unimplemented!()
        }
        pub fn attributes(self) -> ::seedbed::__private::Attributes {
            ::core::unimplemented!()
        }
        pub async fn create<__SeedbedTarget>(
            self,
            _db: __SeedbedTarget,
        ) -> ::core::result::Result<Broken, ::seedbed::__private::Error> {
            ::core::unimplemented!()
        }
        pub async fn create_list<__SeedbedTarget>(
            self,
            _db: __SeedbedTarget,
            _n: usize,
        ) -> ::core::result::Result<
            ::std::vec::Vec<Broken>,
            ::seedbed::__private::Error,
        > {
            ::core::unimplemented!()
        }
        pub async fn create_list_with<__SeedbedTarget, __SeedbedEach>(
            self,
            _db: __SeedbedTarget,
            _n: usize,
            _each: __SeedbedEach,
        ) -> ::core::result::Result<
            ::std::vec::Vec<Broken>,
            ::seedbed::__private::Error,
        > {
            ::core::unimplemented!()
        }
        pub fn after_create<__SeedbedHook>(self, _hook: __SeedbedHook) -> Self {
            self
        }
    }
};
